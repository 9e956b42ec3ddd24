"""`drape bench fuzz`: every RPC of every service, through the real servers, with messages
that are well-typed but hostile, generated from the protos by hypothesis: unicode, empty
and huge strings; extreme and NaN numbers; unknown enum values; empty and oversized repeated
fields; each oneof choice; random bytes and mutated JPEG, PNG and WebP files as images;
tiny deadlines and none.

A case fails when the server answers INTERNAL, UNKNOWN or UNIMPLEMENTED, or when a call
outlives its deadline (by 2 s; 60 s without one); hypothesis then shrinks it to a small
example, which the report keeps. At the end every service must still be SERVING, and its
open files, threads and memory are compared with the start.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from drape.cli.bench import format_table, storefront_stack, write_report

FAILING = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED}
DEADLINES = (None, 0.001, 0.05, 1.0, 10.0)
NO_DEADLINE_BOUND_S = 60.0
SLACK_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--per-rpc", type=int, default=200, help="generated cases per RPC")
    parser.add_argument("--seed", type=int, default=0)


def _images() -> list[bytes]:
    """Small valid JPEG, PNG and WebP files: mutated, they reach the decoders' error paths."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((48, 48))
    out = []
    for kind in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        photo.save(buffer, format=kind)
        out.append(buffer.getvalue())
    return out


def strategies(hints: dict[str, list[str]]):
    """hypothesis strategies for any message type, from its descriptor. ``hints`` gives
    plausible values for string fields by name (catalog garment ids, user ids), so generated
    calls also reach past the first lookup."""
    from google.protobuf import message_factory
    from google.protobuf.descriptor import FieldDescriptor as F
    from hypothesis import strategies as st

    images = _images()

    def mutated(data: bytes, draw) -> bytes:
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] = draw(st.integers(0, 255))
        return bytes(raw[: draw(st.integers(1, len(raw)))]) if draw(st.booleans()) else bytes(raw)

    @st.composite
    def image_bytes(draw) -> bytes:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            return draw(st.binary(max_size=256))
        valid = draw(st.sampled_from(images))
        return valid if choice == 1 else mutated(valid, draw)

    text = st.one_of(
        st.text(max_size=40), st.just(""), st.text(min_size=1, max_size=3).map(lambda s: s * 5000),
    )  # fmt: skip
    ints = {t: (-(2**31), 2**31 - 1) for t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32)}
    ints |= {t: (-(2**63), 2**63 - 1) for t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64)}
    ints |= {t: (0, 2**32 - 1) for t in (F.TYPE_UINT32, F.TYPE_FIXED32)}
    ints |= {t: (0, 2**64 - 1) for t in (F.TYPE_UINT64, F.TYPE_FIXED64)}

    def scalar(field):
        if field.type == F.TYPE_STRING:
            plausible = hints.get(field.name)
            return st.one_of(text, st.sampled_from(plausible)) if plausible else text
        if field.type == F.TYPE_BYTES:
            return image_bytes() if field.name == "data" else st.binary(max_size=512)
        if field.type in ints:
            low, high = ints[field.type]
            return st.one_of(st.integers(-3, 300).filter(lambda v: low <= v <= high), st.sampled_from([low, high]),
                             st.integers(low, high))  # fmt: skip
        if field.type in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
            return st.floats(
                allow_nan=True, allow_infinity=True, width=32 if field.type == F.TYPE_FLOAT else 64
            )
        if field.type == F.TYPE_BOOL:
            return st.booleans()
        if field.type == F.TYPE_ENUM:
            known = [v.number for v in field.enum_type.values]
            return st.one_of(st.sampled_from(known), st.integers(-2, 1000))
        raise TypeError(field.type)

    def value(field, depth: int):
        if field.type == F.TYPE_MESSAGE:
            return message(field.message_type, depth + 1)
        return scalar(field)

    cache: dict[tuple[str, int], Any] = {}

    def message(descriptor, depth: int = 0):
        key = (descriptor.full_name, depth)
        if key in cache:
            return cache[key]
        cls = message_factory.GetMessageClass(descriptor)

        @st.composite
        def build(draw):
            msg = cls()
            if depth > 3:
                return msg
            for field in descriptor.fields:
                if field.containing_oneof is not None or not draw(st.booleans()):
                    continue
                _set(msg, field, draw, depth)
            for oneof in descriptor.oneofs:
                choice = draw(st.sampled_from([None, *oneof.fields]))
                if choice is not None:
                    _set(msg, choice, draw, depth)
            return msg

        def _set(msg, field, draw, depth: int) -> None:
            if field.label == F.LABEL_REPEATED:
                size = draw(
                    st.one_of(
                        st.integers(0, 3), st.integers(200, 1200) if depth == 0 else st.just(0)
                    )
                )
                items = [draw(value(field, depth)) for _ in range(min(size, 3))]
                items = (items * (size // max(len(items), 1) + 1))[:size] if items else []
                target = getattr(msg, field.name)
                if field.type == F.TYPE_MESSAGE:
                    for item in items:
                        target.add().CopyFrom(item)
                else:
                    target.extend(items)
            elif field.type == F.TYPE_MESSAGE:
                getattr(msg, field.name).CopyFrom(draw(value(field, depth)))
            else:
                setattr(msg, field.name, draw(value(field, depth)))

        cache[key] = build()
        return cache[key]

    return message


def rpcs() -> list[tuple[str, Any]]:
    """(service name in the stack, method descriptor) for every RPC of every service."""
    from drape.v1 import events_pb2, features_pb2, gateway_pb2, recommend_pb2, splice_pb2, tryon_pb2

    found = []
    for name, module in (("gateway", gateway_pb2), ("recommend", recommend_pb2), ("features", features_pb2),
                         ("tryon", tryon_pb2), ("splice", splice_pb2), ("events", events_pb2)):  # fmt: skip
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(name, method) for method in service.methods]
    return found


def _process(pid: int) -> dict[str, int]:
    """Open files, threads and RSS of a live process; {"dead": 1} for one that exited."""
    proc = Path(f"/proc/{pid}")
    try:
        lines = (proc / "status").read_text().splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        if "VmRSS" not in status or status.get("State", "").strip().startswith("Z"):
            return {"dead": 1}
        return {"fds": len(list((proc / "fd").iterdir())), "threads": int(status["Threads"]),
                "rss_mb": int(status["VmRSS"].split()[0]) // 1024}  # fmt: skip
    except OSError:
        return {"dead": 1}


def _checker(call, streaming: bool, codes: Counter[str], slowest: list[float]):
    """One generated case: the call, its status counted, and the failures asserted."""

    def case(request, deadline) -> None:
        started = time.monotonic()
        try:
            if streaming:
                list(call(iter(request), timeout=deadline))
            else:
                call.future(request, timeout=deadline).result(
                    timeout=(deadline or NO_DEADLINE_BOUND_S) + SLACK_S
                )
            code = grpc.StatusCode.OK
        except grpc.FutureTimeoutError:
            raise AssertionError(f"the call outlived its deadline ({deadline} s)") from None
        except grpc.RpcError as exc:
            code = exc.code()
            assert code not in FAILING, f"{code.name}: {exc.details()}"
        took = time.monotonic() - started
        slowest[0] = max(slowest[0], took)
        codes[code.name] += 1
        assert took <= (deadline or NO_DEADLINE_BOUND_S) + SLACK_S, (
            f"took {took:.1f} s, deadline {deadline}"
        )

    return case


def _round(channels: dict[str, grpc.Channel], message, per_rpc: int, seed: int,
           died: Callable[[], dict[str, str]]) -> list[dict[str, Any]]:  # fmt: skip
    """``per_rpc`` generated cases against every RPC; a row per RPC, naming any service
    whose process died during that RPC's cases (with the end of its log)."""
    already: set[str] = set()
    from google.protobuf import message_factory
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as with_seed
    from hypothesis import strategies as st

    rows = []
    for service, method in rpcs():
        out = message_factory.GetMessageClass(method.output_type)
        path = f"/{method.containing_service.full_name}/{method.name}"
        channel = channels[service]
        if method.client_streaming:
            call = channel.stream_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=out.FromString)  # fmt: skip
            requests = st.lists(message(method.input_type), max_size=4)
        else:
            call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=out.FromString)  # fmt: skip
            requests = message(method.input_type)
        codes: Counter[str] = Counter()
        slowest = [0.0]
        case = given(request=requests, deadline=st.sampled_from(DEADLINES))(
            _checker(call, method.client_streaming, codes, slowest)
        )
        case = settings(max_examples=per_rpc, deadline=None, database=None, print_blob=False,
                        suppress_health_check=list(HealthCheck))(with_seed(seed)(case))  # fmt: skip
        failure = ""
        started = time.monotonic()
        try:
            case()
        except Exception as exc:  # hypothesis re-raises the shrunk failing case
            failure = f"{type(exc).__name__}: {str(exc)[:500]}"
        dead = {name: tail for name, tail in died().items() if name not in already}
        already |= set(dead)
        if dead:
            failure = (failure + f" services died: {', '.join(dead)}").strip()
        rows.append({"rpc": f"{service}.{method.name}", "died": dead, "cases": sum(codes.values()),
                     "ok": codes.get("OK", 0), "refused": sum(codes.values()) - codes.get("OK", 0),
                     "codes": dict(codes), "slowest_s": round(slowest[0], 2),
                     "seconds": round(time.monotonic() - started, 1), "failure": failure})  # fmt: skip
    return rows


def fuzz(
    stack, per_rpc: int, seed: int, hints: dict[str, list[str]], warmup: int = 20
) -> dict[str, Any]:
    """Runs ``per_rpc`` generated cases against every RPC of ``stack``, after ``warmup``
    others (thread pools grown, models and caches loaded: what the resource comparison
    starts from); the report."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    message = strategies(hints)
    channels = {name: grpc.insecure_channel(stack.address(name), options=[
        ("grpc.max_send_message_length", 64 * 2**20), ("grpc.max_receive_message_length", 64 * 2**20)])
        for name in {n for n, _ in rpcs()}}  # fmt: skip
    pids = {name: stack.endpoints[name].pid for name in channels}

    def died() -> dict[str, str]:
        """Services whose process exited, with the end of their log."""
        dead = {}
        for name, pid in pids.items():
            if _process(pid).get("dead"):
                log = stack.log_path(name)
                dead[name] = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return dead

    warm = _round(channels, message, warmup, seed + 1, died)
    before = {name: _process(pid) for name, pid in pids.items()}
    rows = _round(channels, message, per_rpc, seed, died)
    for row, early in zip(rows, warm, strict=True):  # a failure in the warm-up counts too
        row["failure"] = row["failure"] or early["failure"]
    serving = {}
    for name, channel in channels.items():
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            serving[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            serving[name] = exc.code().name
        channel.close()
    after = {name: _process(pid) for name, pid in pids.items()}
    return {"rpcs": rows, "serving": serving, "processes": {n: {"before": before[n], "after": after[n]}
                                                            for n in pids}}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        print("drape bench fuzz needs hypothesis, from the dev extra: pip install -e '.[dev]'")
        return 2
    with tempfile.TemporaryDirectory(prefix="drape-fuzz-") as tmp, \
            storefront_stack(Path(tmp), garments=24, seed=args.seed) as (stack, garments):  # fmt: skip
        report = fuzz(
            stack, args.per_rpc, args.seed, {"garment_id": garments, "user_id": ["u1", "u2"]}
        )
    rows = report["rpcs"]
    print(f"fuzz: {args.per_rpc} generated cases per RPC through the running services")
    print(format_table(rows, ["rpc", "cases", "ok", "refused", "slowest_s", "seconds"]))
    failures = [r for r in rows if r["failure"]]
    for row in failures:
        print(f"FAILED {row['rpc']}: {row['failure']}")
    print("still serving: " + ", ".join(f"{n} {s}" for n, s in report["serving"].items()))
    for name, p in report["processes"].items():
        if p["after"].get("dead"):
            print(f"  {name}: DIED")
            continue
        print(f"  {name}: fds {p['before']['fds']} -> {p['after']['fds']}, threads {p['before']['threads']} -> "
              f"{p['after']['threads']}, RSS {p['before']['rss_mb']} -> {p['after']['rss_mb']} MB")  # fmt: skip
    for row in rows:
        for name, tail in row["died"].items():
            print(f"--- {name} died during {row['rpc']}; the end of its log:\n{tail}")
    out = write_report("fuzz", rows, args.out, {"per_rpc": args.per_rpc, "serving": report["serving"],
                                                 "processes": report["processes"]})  # fmt: skip
    print(f"wrote {out}")
    healthy = all(status == "SERVING" for status in report["serving"].values())
    return 0 if healthy and not failures else 1
