"""Reading a scrape the way Prometheus does: the exposition text, parsed into samples."""
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str | bytes) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} of an exposition text."""
    if isinstance(text, bytes):
        text = text.decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def scrape(metrics) -> dict[tuple[str, frozenset], float]:
    return samples(await metrics.exposition())


def value(scraped: dict, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly these labels; None when it is not there."""
    return scraped.get((name, frozenset(labels.items())))


def labelled(scraped: dict, name: str) -> list[dict[str, str]]:
    """The label sets of every sample called `name`."""
    return [dict(labels) for sample, labels in scraped if sample == name]
