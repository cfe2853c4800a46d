"""One hierarchy for every error the library raises.

Each error carries the CLI exit code and the HTTP status that the two
front-ends (``exactvc.cli`` and ``server``) translate it to, each in one place.
Messages are one line and name the problem.
"""

from __future__ import annotations


class ExactError(Exception):
    """Base of every exactvc error."""

    exit_code: int = 1
    http_status: int = 500
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ExactError):
    """The caller asked for something malformed (bad option value, bad argument)."""

    exit_code = 2
    http_status = 400
    kind = "usage"


class NotARepository(ExactError):
    exit_code = 3
    http_status = 404
    kind = "not_a_repository"


class NotFound(ExactError):
    """A revision, image, label or annotation that does not exist."""

    exit_code = 4
    http_status = 404
    kind = "not_found"


class InvalidInput(ExactError):
    """Input data (a file, a geometry, a JSON body) is malformed or invalid."""

    exit_code = 5
    http_status = 422
    kind = "invalid_input"


class InvalidGeometry(InvalidInput):
    kind = "invalid_geometry"


class UnknownLabel(InvalidInput):
    kind = "unknown_label"


class TooLarge(InvalidInput):
    """An upload over its size limit."""

    http_status = 413
    kind = "too_large"


class Conflict(ExactError):
    """The operation would lose data or collides with concurrent work."""

    exit_code = 6
    http_status = 409
    kind = "conflict"


class AlreadyExists(Conflict):
    """Something to be created (an annotation id, a branch, a tag, a user) exists already."""

    kind = "already_exists"


class DirtyWorkingState(Conflict):
    kind = "dirty_working_state"


class RefConflict(Conflict):
    """A compare-and-swap on a ref failed: somebody else moved it first."""

    kind = "ref_conflict"


class RefNameConflict(Conflict):
    """A ref name that cannot live beside existing ones (a branch named like a tag, ``a`` beside ``a/b``)."""

    kind = "ref_name_conflict"


class LockError(Conflict):
    kind = "locked"


class HookFailed(ExactError):
    exit_code = 7
    http_status = 422
    kind = "hook_failed"


class CorruptObject(ExactError):
    """Stored bytes do not match their id or do not decode."""

    exit_code = 8
    http_status = 500
    kind = "corrupt_object"


class MissingObject(CorruptObject):
    kind = "missing_object"


class PermissionDenied(ExactError):
    """The server refused: not authenticated (401) or not allowed (403)."""

    exit_code = 9
    http_status = 403
    kind = "forbidden"


class NetworkError(ExactError):
    exit_code = 10
    http_status = 502
    kind = "network"


class BackendUnavailable(ExactError):
    """A storage backend (S3-compatible object storage, PostgreSQL) cannot be reached; retry later."""

    exit_code = 75
    http_status = 503
    kind = "backend_unavailable"


class PluginFailed(ExactError):
    """A plugin raised, ran past its time limit, was cancelled or returned something invalid (nothing changed)."""

    exit_code = 1
    http_status = 422
    kind = "plugin_failed"
