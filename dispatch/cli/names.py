"""Names for resources created without one, in the shape Dispatch's CLI gave them:
`adjective-animal-NNNNNN`."""
import secrets

ADJECTIVES = ("agile", "bold", "brave", "bright", "calm", "clever", "eager", "fancy", "gentle", "happy",
              "jolly", "keen", "lively", "lucky", "merry", "nimble", "proud", "quick", "quiet", "steady",
              "swift", "tidy", "vivid", "witty", "zesty")
ANIMALS = ("badger", "beaver", "bison", "camel", "cheetah", "dolphin", "eagle", "falcon", "ferret", "gecko",
           "heron", "ibis", "jaguar", "koala", "lemur", "lynx", "marmot", "narwhal", "otter", "panda",
           "puffin", "quokka", "raven", "salmon", "tapir", "walrus", "yak", "zebra")


def random_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}-{secrets.randbelow(1_000_000):06d}"
