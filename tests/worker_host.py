"""A stand-in for the Functions host that drives Microsoft's Python worker (azure-functions-runtime,
the worker of Python 3.13+ apps) the way the host does: worker init (which indexes the app),
function metadata, one load per function, then invocations. Run it with the worker's Python
(./dev builds .venv-worker); tests/test_worker.py talks to it over stdin/stdout, one JSON
document per line.

The host speaks to the worker in the messages of its gRPC protocol (FunctionRpc.proto, package
AzureFunctionsRpcMessages). Those definitions are not published as a Python package, so the
messages the worker reads and builds are declared below from their field names and numbers, and
made into protobuf classes at start. Only what the worker touches is declared: protobuf ignores
fields it was not told about, as a host of another version would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import traceback
import uuid
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2

PACKAGE = "AzureFunctionsRpcMessages"
_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "sint64": _F.TYPE_SINT64,
    "double": _F.TYPE_DOUBLE,
}
_WELL_KNOWN = {"Duration": ".google.protobuf.Duration", "Timestamp": ".google.protobuf.Timestamp"}

# message → fields as (name, number, type[, oneof]). A type is a scalar, a message or enum of
# this package ("enum X"), "repeated T" or "map<K,V>". Field names and numbers are the protocol's.
MESSAGES: dict[str, list[tuple[str, ...]]] = {
    "StreamingMessage": [
        ("request_id", "1", "string"),
        ("invocation_request", "4", "InvocationRequest", "content"),
        ("invocation_response", "5", "InvocationResponse", "content"),
        ("function_load_request", "8", "FunctionLoadRequest", "content"),
        ("function_load_response", "9", "FunctionLoadResponse", "content"),
        ("worker_init_response", "16", "WorkerInitResponse", "content"),
        ("worker_init_request", "17", "WorkerInitRequest", "content"),
        ("functions_metadata_request", "29", "FunctionsMetadataRequest", "content"),
        ("function_metadata_response", "30", "FunctionMetadataResponse", "content"),
    ],
    "WorkerInitRequest": [
        ("host_version", "1", "string"),
        ("capabilities", "2", "map<string,string>"),
        ("worker_directory", "4", "string"),
        ("function_app_directory", "5", "string"),
    ],
    "WorkerInitResponse": [
        ("worker_version", "1", "string"),
        ("capabilities", "2", "map<string,string>"),
        ("result", "3", "StatusResult"),
        ("worker_metadata", "4", "WorkerMetadata"),
    ],
    "WorkerMetadata": [
        ("runtime_name", "1", "string"),
        ("runtime_version", "2", "string"),
        ("worker_version", "3", "string"),
        ("worker_bitness", "4", "string"),
        ("custom_properties", "5", "map<string,string>"),
    ],
    "StatusResult": [
        ("result", "1", "string"),
        ("exception", "2", "RpcException"),
        ("status", "4", "enum StatusResult.Status"),
    ],
    "RpcException": [
        ("stack_trace", "1", "string"),
        ("message", "2", "string"),
        ("source", "3", "string"),
        ("is_user_exception", "4", "bool"),
        ("type", "5", "string"),
    ],
    "FunctionsMetadataRequest": [("function_app_directory", "1", "string")],
    "FunctionMetadataResponse": [
        ("function_metadata_results", "1", "repeated RpcFunctionMetadata"),
        ("result", "2", "StatusResult"),
        ("use_default_metadata_indexing", "3", "bool"),
    ],
    "RpcFunctionMetadata": [
        ("directory", "1", "string"),
        ("script_file", "2", "string"),
        ("entry_point", "3", "string"),
        ("name", "4", "string"),
        ("bindings", "6", "map<string,BindingInfo>"),
        ("is_proxy", "7", "bool"),
        ("status", "8", "StatusResult"),
        ("language", "9", "string"),
        ("raw_bindings", "10", "repeated string"),
        ("function_id", "13", "string"),
        ("managed_dependency_enabled", "14", "bool"),
        ("retry_options", "15", "RpcRetryOptions"),
        ("properties", "16", "map<string,string>"),
    ],
    "BindingInfo": [
        ("type", "2", "string"),
        ("direction", "3", "enum BindingInfo.Direction"),
        ("data_type", "4", "enum BindingInfo.DataType"),
        ("properties", "5", "map<string,string>"),
    ],
    "RpcRetryOptions": [
        ("max_retry_count", "2", "int32"),
        ("delay_interval", "3", "Duration"),
        ("minimum_interval", "4", "Duration"),
        ("maximum_interval", "5", "Duration"),
        ("retry_strategy", "6", "enum RpcRetryOptions.RetryStrategy"),
    ],
    "FunctionLoadRequest": [
        ("function_id", "1", "string"),
        ("metadata", "2", "RpcFunctionMetadata"),
        ("managed_dependency_enabled", "3", "bool"),
    ],
    "FunctionLoadResponse": [
        ("function_id", "1", "string"),
        ("result", "2", "StatusResult"),
        ("is_dependency_downloaded", "3", "bool"),
    ],
    "InvocationRequest": [
        ("invocation_id", "1", "string"),
        ("function_id", "2", "string"),
        ("input_data", "3", "repeated ParameterBinding"),
        ("trigger_metadata", "4", "map<string,TypedData>"),
        ("trace_context", "5", "RpcTraceContext"),
        ("retry_context", "6", "RetryContext"),
    ],
    "RpcTraceContext": [
        ("trace_parent", "1", "string"),
        ("trace_state", "2", "string"),
        ("attributes", "3", "map<string,string>"),
    ],
    "RetryContext": [
        ("retry_count", "1", "int32"),
        ("max_retry_count", "2", "int32"),
        ("exception", "3", "RpcException"),
    ],
    "InvocationResponse": [
        ("invocation_id", "1", "string"),
        ("output_data", "2", "repeated ParameterBinding"),
        ("result", "3", "StatusResult"),
        ("return_value", "4", "TypedData"),
    ],
    "ParameterBinding": [
        ("name", "1", "string"),
        ("data", "2", "TypedData", "rpc_data"),
        ("rpc_shared_memory", "3", "RpcSharedMemory", "rpc_data"),
    ],
    "RpcSharedMemory": [("name", "1", "string"), ("offset", "2", "int64"), ("count", "3", "int64")],
    "TypedData": [
        ("string", "1", "string", "data"),
        ("json", "2", "string", "data"),
        ("bytes", "3", "bytes", "data"),
        ("stream", "4", "bytes", "data"),
        ("http", "5", "RpcHttp", "data"),
        ("int", "6", "sint64", "data"),
        ("double", "7", "double", "data"),
        ("collection_bytes", "8", "CollectionBytes", "data"),
        ("collection_string", "9", "CollectionString", "data"),
        ("collection_double", "10", "CollectionDouble", "data"),
        ("collection_sint64", "11", "CollectionSInt64", "data"),
    ],
    "CollectionString": [("string", "1", "repeated string")],
    "CollectionBytes": [("bytes", "1", "repeated bytes")],
    "CollectionDouble": [("double", "1", "repeated double")],
    "CollectionSInt64": [("sint64", "1", "repeated sint64")],
    "RpcHttp": [
        ("method", "1", "string"),
        ("url", "2", "string"),
        ("headers", "3", "map<string,string>"),
        ("body", "4", "TypedData"),
        ("params", "10", "map<string,string>"),
        ("status_code", "12", "string"),
        ("query", "15", "map<string,string>"),
        ("enable_content_negotiation", "16", "bool"),
        ("rawBody", "17", "TypedData"),
        ("cookies", "19", "repeated RpcHttpCookie"),
    ],
    "RpcHttpCookie": [
        ("name", "1", "string"),
        ("value", "2", "string"),
        ("domain", "3", "NullableString"),
        ("path", "4", "NullableString"),
        ("expires", "5", "NullableTimestamp"),
        ("secure", "6", "NullableBool"),
        ("http_only", "7", "NullableBool"),
        ("same_site", "8", "enum RpcHttpCookie.SameSite"),
        ("max_age", "9", "NullableDouble"),
    ],
    "NullableString": [("value", "1", "string", "string")],
    "NullableDouble": [("value", "1", "double", "double")],
    "NullableBool": [("value", "1", "bool", "bool")],
    "NullableTimestamp": [("value", "1", "Timestamp", "timestamp")],
}
ENUMS: dict[str, list[tuple[str, int]]] = {
    "StatusResult.Status": [("Failure", 0), ("Success", 1), ("Cancelled", 2)],
    "BindingInfo.Direction": [("in", 0), ("out", 1), ("inout", 2)],
    "BindingInfo.DataType": [("undefined", 0), ("string", 1), ("binary", 2), ("stream", 3)],
    "RpcRetryOptions.RetryStrategy": [("exponential_backoff", 0), ("fixed_delay", 1)],
    "RpcHttpCookie.SameSite": [("None", 0), ("Lax", 1), ("Strict", 2), ("ExplicitNone", 3)],
}


def _type_name(name: str) -> str:
    return _WELL_KNOWN.get(name) or f".{PACKAGE}.{name}"


def _field(message: descriptor_pb2.DescriptorProto, spec: tuple[str, ...]) -> None:
    name, number, kind = spec[:3]
    field = message.field.add(name=name, number=int(number), label=_F.LABEL_OPTIONAL)
    if kind.startswith("map<"):
        key, value = kind[4:-1].split(",")
        entry = message.nested_type.add(name="".join(p.title() for p in name.split("_")) + "Entry")
        entry.options.map_entry = True
        _field(entry, ("key", "1", key))
        _field(entry, ("value", "2", value))
        field.label, field.type = _F.LABEL_REPEATED, _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{message.name}.{entry.name}"
        return
    if kind.startswith("repeated "):
        field.label, kind = _F.LABEL_REPEATED, kind.removeprefix("repeated ")
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    elif kind.startswith("enum "):
        field.type, field.type_name = _F.TYPE_ENUM, _type_name(kind.removeprefix("enum "))
    else:
        field.type, field.type_name = _F.TYPE_MESSAGE, _type_name(kind)
    if len(spec) > 3:
        names = [o.name for o in message.oneof_decl]
        if spec[3] not in names:
            message.oneof_decl.add(name=spec[3])
            names.append(spec[3])
        field.oneof_index = names.index(spec[3])


def protocol() -> SimpleNamespace:
    """The protocol's message classes, by name (the `protos` the worker is handed)."""
    pool = descriptor_pool.DescriptorPool()
    for well_known in (duration_pb2, timestamp_pb2):
        pool.AddSerializedFile(well_known.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="acs_triage_tests/function_rpc.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"],
    )
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for enum_name, values in ENUMS.items():
            owner, _, short = enum_name.partition(".")
            if owner == name:
                enum = message.enum_type.add(name=short)
                for value_name, number in values:
                    enum.value.add(name=value_name, number=number)
        for spec in fields:
            _field(message, spec)
    pool.Add(file)
    return SimpleNamespace(
        **{
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES
        }
    )


class Host:
    """The host's side of one worker process: requests in the host's order, answers as JSON."""

    def __init__(self, directory: str) -> None:
        from azure_functions_runtime import handle_event

        self.events = handle_event
        self.protos = protocol()
        self.directory = directory
        self.functions: dict[str, Any] = {}  # function name → RpcFunctionMetadata

    def _send(self, handler: Any, **content: Any) -> Any:
        message = self.protos.StreamingMessage(request_id=uuid.uuid4().hex, **content)
        request = SimpleNamespace(request=message, properties={"host": "127.0.0.1", "protos": self.protos})
        return asyncio.run(handler(request))

    def start(self) -> dict[str, Any]:
        """Init (the worker indexes the app), function metadata, then a load of each function."""
        init = self._send(
            self.events.worker_init_request,
            worker_init_request=self.protos.WorkerInitRequest(
                host_version="4.1040.0",
                capabilities={"RpcHttpBodyOnly": "true"},
                worker_directory=self.directory,
                function_app_directory=self.directory,
            ),
        )
        metadata = self._send(
            self.events.functions_metadata_request,
            functions_metadata_request=self.protos.FunctionsMetadataRequest(
                function_app_directory=self.directory
            ),
        )
        loads = {}
        for function in metadata.function_metadata_results:
            self.functions[function.name] = function
            loaded = self._send(
                self.events.function_load_request,
                function_load_request=self.protos.FunctionLoadRequest(
                    function_id=function.function_id, metadata=function
                ),
            )
            loads[function.name] = _status(loaded.result)
        return {
            "init": _status(init.result),
            "init_error": init.result.exception.message,
            "runtime_version": init.worker_metadata.runtime_version,
            "worker_version": init.worker_metadata.worker_version,
            "metadata": _status(metadata.result),
            "use_default_metadata_indexing": metadata.use_default_metadata_indexing,
            "functions": {
                f.name: {
                    "bindings": [json.loads(raw) for raw in f.raw_bindings],
                    "directions": {
                        n: self.protos.BindingInfo.Direction.Name(b.direction) for n, b in f.bindings.items()
                    },
                }
                for f in metadata.function_metadata_results
            },
            "loads": loads,
        }

    def invoke(self, name: str, inputs: dict[str, Any], trigger_metadata: dict[str, Any]) -> Any:
        function = self.functions[name]
        return self._send(
            self.events.invocation_request,
            invocation_request=self.protos.InvocationRequest(
                invocation_id=uuid.uuid4().hex,
                function_id=function.function_id,
                input_data=[self.protos.ParameterBinding(name=k, data=v) for k, v in inputs.items()],
                trigger_metadata=trigger_metadata,
                trace_context=self.protos.RpcTraceContext(
                    trace_parent=f"00-{uuid.uuid4().hex}-{'0' * 15}1-01"
                ),
                retry_context=self.protos.RetryContext(retry_count=0, max_retry_count=0),
            ),
        )

    def http(self, command: dict[str, Any]) -> dict[str, Any]:
        """An HTTP request as the host forwards it (trigger binding `req`)."""
        td = self.protos.TypedData
        request = self.protos.RpcHttp(
            method=command["method"],
            url=command["url"],
            headers=command.get("headers", {}),
            query=command.get("query", {}),
            body=td(bytes=base64.b64decode(command.get("body", ""))),
        )
        response = self.invoke(command["function"], {"req": td(http=request)}, {})
        answer = _invocation(response)
        if response.return_value.WhichOneof("data") == "http":
            http = response.return_value.http
            body = http.body
            raw = body.bytes if body.WhichOneof("data") == "bytes" else body.string.encode()
            answer |= {"status": int(http.status_code), "headers": dict(http.headers), "body": raw.decode()}
        return answer

    def queue(self, command: dict[str, Any]) -> dict[str, Any]:
        """A queue message as the queue extension hands it over, with its metadata."""
        td = self.protos.TypedData
        metadata = {
            "Id": td(string=command["id"]),
            "DequeueCount": td(json=str(command.get("dequeue_count", 1))),
            "PopReceipt": td(string="pop-receipt"),
            "InsertionTime": td(json=json.dumps("2026-12-07T12:00:00+00:00")),
        }
        return _invocation(self.invoke(command["function"], {"msg": td(string=command["body"])}, metadata))

    def timer(self, command: dict[str, Any]) -> dict[str, Any]:
        """A timer tick (the timer extension's JSON document)."""
        tick = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": None,
            "IsPastDue": command.get("past_due", False),
        }
        inputs = {"timer": self.protos.TypedData(json=json.dumps(tick))}
        return _invocation(self.invoke(command["function"], inputs, {}))


def _status(result: Any) -> str:
    return str(type(result).Status.Name(result.status))


def _invocation(response: Any) -> dict[str, Any]:
    return {"result": _status(response.result), "exception": response.result.exception.message}


def main() -> int:
    """Serve the commands on stdin, one JSON document a line; each answer is one line on the
    original stdout (the app's and worker's own prints go to stderr)."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    host: Host | None = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "start":
                sys.path.insert(0, command["directory"])
                os.chdir(command["directory"])
                host = Host(command["directory"])
                answer = host.start()
            else:
                assert host is not None, "start first"
                answer = getattr(host, command["op"])(command)
        except Exception:  # the test shows what went wrong in the host stand-in itself
            answer = {"result": "HostError", "exception": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
