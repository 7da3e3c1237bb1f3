"""A local runtime whose server is not root, for test_containment.py: run as another user, it
deploys the attacker beside a data directory of that user's, tries the attacks named on the
command line and prints what they got, one JSON object.

    python -m tests.contract.unprivileged DATA_DIR SANDBOX
"""
import asyncio
import json
import sys
from pathlib import Path

from dispatch.drivers.local import LocalRuntime
from dispatch.drivers.ports import DeploymentSpec, ImageSpec
from dispatch.schemas import source

SECRETS = ("secret.key", "admin.pem", "dispatch.db")


async def main(data: Path, sandbox: str) -> dict:
    runtime = LocalRuntime(data / "runtime", sandbox=sandbox)
    try:
        folder = data / "attacker-source"
        folder.mkdir()
        (folder / "attacker.py").write_text((Path(__file__).parent / "attacker.py").read_text())
        image = await runtime.build_image(ImageSpec(id="image", name="image", language="python3", base_url=""))
        await runtime.deploy(DeploymentSpec(faas_id="attacker", name="attacker", organization="dispatch",
                                            language="python3", image_location=image,
                                            source=source.pack(folder / "attacker.py"), processes=16, max_replicas=2))
        paths = [str(data / name) for name in SECRETS] + [str(data / "home" / ".dispatch" / "config.json")]
        read = await runtime.invoke("attacker", {}, {"attack": "read", "paths": paths, "folders": [str(data)]}, 30_000)
        bomb = await runtime.invoke("attacker", {}, {"attack": "fork bomb"}, 60_000)
        after = await runtime.invoke("attacker", {}, {"attack": "who"}, 30_000)
        return {"read": read.output, "bomb": bomb.error, "after": after.error}
    finally:
        await runtime.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))))
