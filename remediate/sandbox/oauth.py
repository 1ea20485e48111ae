"""Placeholder: filled in by the oauth handler work."""

from __future__ import annotations

from remediate.sandbox.app import Context, Response


def handle(ctx: Context, **_: object) -> Response:
    return Response.of_json(501, [{"errorCode": "NOT_IMPLEMENTED", "message": "oauth"}])
