"""Errors that carry their HTTP status, so the HTTP layer maps them in one place."""


class BackendError(Exception):
    """Base of every error the service reports to its client."""

    status = 500


class BadRequestError(BackendError):
    """The request itself is malformed (not JSON, missing fields, wrong types)."""

    status = 400


class UnauthorizedError(BackendError):
    status = 401


class ForbiddenError(BackendError):
    """The caller may not do this here (e.g. pin a model version without credentials configured)."""

    status = 403


class NotFoundError(BackendError):
    status = 404


class LabelConfigError(BackendError):
    """The labeling config is broken or has nothing this backend can serve."""

    status = 422


class TaskError(BackendError):
    """One task cannot be used (media missing or unreadable, bad data); never fails a whole batch."""

    status = 422


class MediaError(TaskError):
    """A media URL could not be turned into a readable local file."""
