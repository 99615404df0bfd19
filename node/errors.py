"""The node's exceptions, and the one place that knows OpenAI's error envelope.

    NodeError                       -> {"error": {"message", "type", "param", "code"}}
    ├── BadRequest            400   invalid_request_error  (malformed JSON, bad field)
    │   └── TokenRejected     400   invalid_request_error  (spent, malformed, untrusted mint)
    ├── Unauthorized          401   authentication_error   (missing or unknown key)
    ├── PaymentRequired       402   insufficient_quota     (balance too low, no payment)
    ├── Forbidden             403   permission_error
    ├── NotFound              404   invalid_request_error  (unknown model, route)
    ├── RequestTimeout        408   invalid_request_error  (body not sent in time)
    ├── Conflict              409   invalid_request_error
    ├── Unprocessable         422   invalid_request_error  (an Idempotency-Key reused)
    ├── TooEarly              425   invalid_request_error  (a refund whose request still runs)
    ├── PayloadTooLarge       413   invalid_request_error
    ├── RateLimited           429   rate_limit_error
    ├── ClientClosed          499   invalid_request_error  (client gone before its body came)
    ├── UpstreamError         502   upstream_error
    │   └── NotServed         501   not_implemented_error  (endpoint not served for the model)
    ├── UpstreamTimeout       504   upstream_error
    └── ServiceUnavailable    503   service_unavailable    (mint unreachable, no BTC rate)

On Anthropic's routes (/v1/messages…) the same errors leave in Anthropic's envelope,
`{"type": "error", "error": {"type", "message"}, "request_id"}`, with the same status and the
type Anthropic gives that status (`anthropic_envelope`).

Domain code raises these (or its own errors, mapped at the route); the error middleware turns
any of them into the envelope. Anything else becomes a 500 envelope with no detail.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NodeError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_envelope(self, request_id: str | None = None) -> dict[str, Any]:
        """Anthropic's error body: its type for this status (402: billing_error)."""
        kind = anthropic_type(self.status)
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": self.message}}
        if request_id is not None:
            body["request_id"] = request_id
        return body


# Anthropic's error types by status (its API reference, "Errors"); another 4xx is an
# invalid_request_error there ("also used for other 4XX status codes"), a 5xx an api_error.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "invalid_request_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_type(status: int) -> str:
    return ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


class BadRequest(NodeError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class TokenRejected(BadRequest):
    default_code = "token_invalid"


class Unauthorized(NodeError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PaymentRequired(NodeError):
    status = 402
    type = "insufficient_quota"
    default_code = "insufficient_balance"


class Forbidden(NodeError):
    status = 403
    type = "permission_error"
    default_code = "forbidden"


class NotFound(NodeError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class RequestTimeout(NodeError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class Conflict(NodeError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class Unprocessable(NodeError):
    """422: well formed, but it cannot be done as asked (e.g. an Idempotency-Key that named
    another request)."""

    status = 422
    type = "invalid_request_error"
    default_code = "unprocessable_entity"


class TooEarly(NodeError):
    """425: what was asked for is not ready yet (a request still running); retry after
    `Retry-After`."""

    status = 425
    type = "invalid_request_error"
    default_code = "too_early"


class PayloadTooLarge(NodeError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class ClientClosed(NodeError):
    """The client closed the connection before its body arrived: nobody is there to answer,
    and it is no failure of the node (nginx's 499 in the access line and metrics)."""

    status = 499
    type = "invalid_request_error"
    default_code = "client_closed"


class RateLimited(NodeError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(NodeError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"


class NotServed(UpstreamError):
    """The endpoint is not served for this model: its upstreams do not offer it (configured, or
    a 404 from the upstream). Not the client's mistake, and retrying will not help."""

    status = 501
    type = "not_implemented_error"
    default_code = "endpoint_not_served"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")  # SDKs retry 5xx unless told


class ServiceUnavailable(NodeError):
    status = 503
    type = "service_unavailable"
    default_code = "service_unavailable"


class UpstreamTimeout(NodeError):
    status = 504
    type = "upstream_error"
    default_code = "upstream_timeout"


def internal_error() -> NodeError:
    """What the client sees for a bug: no detail, no traceback."""
    return NodeError("internal error", code="internal_error")
