"""The command lines of the Go CLI whose traffic tests/compat/fixtures holds, one scenario per file.

A step is a command line (run in tests/compat/sources, `{run}` standing for the last `exec`'s run
id and `{work}` for the recording's own folder, where the server keeps its data),
("poll", STATUS, command) — repeated until its JSON output has that status, as a user waits
for READY — or ("during", SECONDS, command) for a command that runs until stopped (`--follow`).

The scenarios of AUTHENTICATED are recorded with the CLI on the context a server's first start
writes (a service account signing every request); the others as an anonymous CLI (`Cookie: unset`)
on a server started --skip-auth. `ci.pem`/`ci.pub` in sources/ are a test account's key pair: the
replay signs as that account where the recording did."""

BASE = ["create base-image py-base dispatchframework/python3-base:0.0.13 --language python3",
        "create image py py-base"]
HELLO = [*BASE, "create function hello python/hello.py --image py", ("poll", "READY", "get function hello -o json")]

SCENARIOS = {
    "version": ["version", "--json version"],
    "base_images": [
        *BASE[:1],
        "create base-image node-base dispatchframework/nodejs-base:0.0.12 --language nodejs",
        ("poll", "READY", "get base-image py-base -o json"),
        "get base-images", "get base-image py-base", "get base-images -o json", "get base-image py-base -o yaml",
        "delete base-image node-base"],
    "images": [
        *BASE[:1],
        "create image plain py-base",
        "create image with-runtime-deps py-base --runtime-deps requirements.txt",
        "create image with-system-deps py-base --system-deps system-deps.json",
        ("poll", "READY", "get image plain -o json"),
        "get images", "get image plain", "get images -o json", "get image with-runtime-deps -o yaml",
        "delete image with-system-deps"],
    "functions": [
        *BASE, "create secret credentials credentials.json",
        "create function hello python/hello.py --image py",
        "create function greeter greeter --image py --handler greet.handle --schema-in schema-in.json"
        " --schema-out schema-out.json --secret credentials --timeout 3000",
        ("poll", "READY", "get function hello -o json"), ("poll", "READY", "get function greeter -o json"),
        "get functions", "get function hello", "get functions -o json", "get function greeter -o yaml",
        "exec greeter --wait --input '{\"name\": \"Jon\"}'",
        "exec greeter --wait --input '{}'",
        "delete function hello"],
    "secrets": [
        "create secret credentials credentials.json",
        "get secrets", "get secret credentials", "get secret credentials --all", "get secrets -o json",
        "get secret credentials -o yaml", "delete secret credentials"],
    "apis": [
        *HELLO,
        "create api hello-get hello",
        "create api hello-post hello --method POST --method PUT --path /hello --path /hi",
        "create api hello-locked hello --https-only --cors --disable -d example.com -d www.example.com --auth public",
        ("poll", "READY", "get api hello-get -o json"),
        "get api", "get api hello-post", "get api --func hello -o json", "get api hello-locked -o yaml",
        "delete api hello-get"],
    "events": [
        *HELLO, "create secret credentials credentials.json",
        "create subscription hello --event-type compat.ping --name ping-hello",
        "create subscription hello --event-type compat.pong --secret credentials",
        "create eventdrivertype compat-type example/compat-driver:1.0",
        "create eventdrivertype compat-exposed example/compat-driver:1.0 --expose",
        "create eventdriver cron --name ticker --set 'schedule=0 3 * * *' --set eventType=compat.ping"
        " --secret credentials",
        "create eventdriver cron --set 'schedule=0 4 * * *'",
        "get subscriptions", "get subscription ping-hello -o json", "get subscriptions -o yaml",
        "get eventdrivertypes", "get eventdrivertype compat-type -o json", "get eventdrivertypes -o yaml",
        "get eventdrivers", "get eventdriver ticker -o json", "get eventdrivers -o yaml",
        "delete subscription ping-hello", "delete eventdriver ticker", "delete eventdrivertype compat-exposed"],
    "emit": [
        "emit compat.ping --data '{\"n\": 1}'",
        "emit compat.ping --data '\"just text\"'",
        "emit compat.ping",
        "emit compat.ping --data-from-file event.json",
        "emit compat.ping --data-from-file event.json --content-type application/json --event-type-version v2"
        " --source-id compat-tests --event-id 1234 --event-schema-url http://example.com/schema"],
    "exec": [
        *HELLO, "create secret credentials credentials.json", "create function failing failing.py --image py",
        "exec hello --wait --input '{\"name\": \"Jon\"}'",
        "exec hello --wait --input '\"a plain string\"'",
        "exec hello --wait --input 42",
        "exec hello --wait --secret credentials",
        "exec hello --input '{\"name\": \"Arya\"}'",
        "get runs", "get runs hello", "get run hello {run}", "get runs hello --last", "get runs hello -o json",
        "get run hello {run} -o yaml", ("during", 4.5, "get runs hello --follow"),
        ("poll", "READY", "get function failing -o json"), "exec failing --wait"],
    "applications": [
        "create application shop", *BASE[:1],
        "create image py py-base -a shop",
        "create function hello python/hello.py --image py -a shop",
        "create function other python/hello.py --image py",
        ("poll", "READY", "get function hello -a shop -o json"),
        "get functions -a shop", "get images -a shop", "exec hello --wait -a shop",
        "get applications", "get application shop", "get application shop -o json", "get applications -o yaml",
        "delete function other -a shop", "delete application shop"],
    "seed_images": ["create seed-images", "get base-images", "get images -o json"],
    "manifest": [
        "create -f everything.yaml",
        ("poll", "READY", "get function compat-hello -o json"),
        "update -f everything-v2.yaml",
        "apply -f everything.yaml",
        "delete -f everything.yaml"],
    "apply_new": ["apply -f fresh.yaml"],
    "errors": [
        "get function missing",
        *BASE[:1], BASE[0],
        "create image orphan no-such-base",
        "create secret credentials credentials.json", "create secret credentials credentials.json",
        "get base-image nope", "get image nope", "get secret nope", "get api nope", "get subscription nope",
        "get eventdriver nope", "get eventdrivertype nope", "get application nope",
        "delete function nope", "delete secret nope", "delete image nope",
        "exec nope --wait", "get run nope 00000000-0000-0000-0000-000000000000",
        "create eventdriver no-such-type --name orphan",
        "create eventdriver cron --name Bad_Name --set 'schedule=* * * * *'",
        "update -f fresh.yaml"],
    "identity": [
        "iam create organization acme",
        "iam create serviceaccount ci --public-key ci.pub",
        "iam create policy ci-read -s ci -a get -r function,image",
        "iam create policy ci-global -s ci -a get -r '*' --global",
        "iam get organization", "iam get organization acme -o json",
        "iam get serviceaccount", "iam get serviceaccount ci -o json",
        "iam get policy", "iam get policy -w", "iam get policy ci-read -o yaml",
        "--organization acme iam get serviceaccount",
        "iam delete policy ci-global", "iam get policy nope",
        "update -f iam.yaml", "iam get policy ci-read -o json",
        "iam delete organization acme",
        "login --service-account dispatch/ci --jwt-private-key ci.pem",
        "get functions",
        "create secret refused credentials.json",
        "--service-account dispatch/admin --jwt-private-key {work}/data/admin.pem iam delete serviceaccount ci",
        "get functions"],
}
AUTHENTICATED = {"identity"}
