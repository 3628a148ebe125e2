"""Logs are JSON lines carrying the service, the logger, extra fields and the trace id."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from clipmesh.runtime.logs import JsonFormatter


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("encoder"))
    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_line_is_json_with_service_logger_and_extras() -> None:
    logger, stream = _capture("clipmesh.test.plain")
    logger.info("batch done", extra={"batch_size": 32, "text": "汉服 🌸"})
    entry = json.loads(stream.getvalue())
    assert entry["service"] == "encoder"
    assert entry["logger"] == "clipmesh.test.plain"
    assert entry["message"] == "batch done"
    assert entry["batch_size"] == 32
    assert entry["text"] == "汉服 🌸"
    assert "trace_id" not in entry  # no active span


def test_the_active_trace_id_is_in_the_line() -> None:
    logger, stream = _capture("clipmesh.test.traced")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("rpc") as span:
        logger.info("inside")
        expected = format(span.get_span_context().trace_id, "032x")
    entry = json.loads(stream.getvalue())
    assert entry["trace_id"] == expected
    assert len(entry["span_id"]) == 16


def test_exceptions_are_one_line_with_the_traceback() -> None:
    logger, stream = _capture("clipmesh.test.exc")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in json.loads(lines[0])["exception"]
