"""HTTP-only errors of the server, in the library's error hierarchy."""

from exactvc.errors import ExactError


class Unauthorized(ExactError):
    exit_code = 9
    http_status = 401
    kind = "unauthorized"


class Forbidden(ExactError):
    exit_code = 9
    http_status = 403
    kind = "forbidden"

