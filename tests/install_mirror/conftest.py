"""The S3 server fixtures (moto on 127.0.0.1), shared with tests/mirror."""

from __future__ import annotations

from tests.support.s3_server import s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]
