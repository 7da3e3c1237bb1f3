"""The domain's error tree; the gateway maps it to HTTP statuses in one middleware."""


class DispatchError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Rejected(DispatchError):
    """The request is invalid (400)."""

    status = 400


class NotFound(DispatchError):
    status = 404


class Conflict(DispatchError):
    """A name already exists, a version moved on, or the resource is not in a usable state (409)."""

    status = 409


class Unavailable(DispatchError):
    status = 503


class TooLarge(Rejected):
    """The request is over one of the platform's size caps (413); the message names the cap."""

    status = 413
