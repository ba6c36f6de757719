"""Conditional GETs for what open pages poll: an unchanged answer is a bodiless 304.

Pages ask again every few seconds while visible, sending the last ``ETag`` in
``If-None-Match``; the store is still read, but nothing is rendered or sent.
"""

from __future__ import annotations

from flask import Response, request


def conditional(response: Response) -> Response:
    response.add_etag()
    # Each user's own numbers: never shared caches, and always revalidated.
    response.headers["Cache-Control"] = "private, no-cache"
    response.make_conditional(request)  # changes the response in place, returns it
    return response
