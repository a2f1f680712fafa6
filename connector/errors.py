"""What can go wrong, split by what the caller must do about it (one root, five kinds)."""
from __future__ import annotations


class OrderbridgeError(Exception):
    """Root of every error orderbridge raises on purpose."""


class ConfigError(OrderbridgeError):
    """The configuration is wrong or incomplete: fatal, a person fixes it."""


class BadSignature(OrderbridgeError):
    """A webhook's signature does not match its raw body: answer 401, store nothing."""


class InvalidInput(OrderbridgeError):
    """Data that can never be sent as it is: dead-letter it with the reason, never retry."""


class RetriableAPIError(OrderbridgeError):
    """The far side is busy or down: try again later, after `retry_after` seconds if given."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FatalAPIError(OrderbridgeError):
    """The far side refused in a way that retrying will not fix (credentials, a bad request)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body
