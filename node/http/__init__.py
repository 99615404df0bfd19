"""The HTTP edge: request ids and error envelopes, credentials, the rate limit, observation
(access log, metrics), the OpenAPI document and the server that answers unparsable requests."""
