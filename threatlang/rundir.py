"""Run directories: one spec's results per directory, one writer at a time, nothing replaced
unless asked.

`manifest.json` says what the results came from: the spec's canonical hash (its IR JSON
without source positions, so moving or reformatting the file changes nothing), that IR, the
run seed, fingerprints of a model file or of the model/data objects handed to `run()`, and the
checkpoints the run trained (hashed as they appear, before the records computed with them).

- `--resume` compares with it and refuses a mismatch, saying what differs;
- a directory that already holds results is refused unless resumed or `--overwrite`n, and
  `--overwrite` replaces only run directories;
- a lock file held with `flock` refuses a second concurrent writer; the kernel releases it when
  its process dies, so the lock file a killed run leaves behind is stale and is taken over;
- the manifest, `spec.json` and `summary.json` are written atomically (temp file, fsync,
  rename), so a kill leaves the old version or the new one.

Nothing here imports torch: fingerprints of objects handed in use their own methods.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UsageError
from .paths import beside_spec, output_dir

FORMAT = "threatlang-run/1"
MANIFEST = "manifest.json"
SPEC = "spec.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.json"
LOCK = ".threatlang.lock"
#: files of a run that --overwrite removes besides its records and recorded checkpoints
REPLACED = (SUMMARY, "timings.json")
_FILE_MODELS = ("state_dict", "torchscript", "onnx")


# ------------------------------------------------------------------------- atomic writes
def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------- what a run is of
def canonical_spec(spec: Any) -> dict:
    """The spec's IR as JSON without source positions."""
    from .serialize import to_json

    return _strip_spans(to_json(spec))


def _strip_spans(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [_strip_spans(v) for v in value]
    return value


def spec_hash(canonical: dict) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(spec: Any, seed: int, model: Any = None, data: Any = None) -> dict:
    """What a run's results depend on beyond its code; raises `UsageError` for a model or data
    file the spec names that does not exist (checked before any directory is touched)."""
    canon = canonical_spec(spec)
    return {
        "spec_name": spec.name,
        "spec_hash": spec_hash(canon),
        "seed": seed,
        "model": _model_fingerprint(spec, model),
        "data": _data_fingerprint(spec, data),
        "spec": canon,
    }


def _model_fingerprint(spec: Any, model: Any) -> dict | None:
    if model is not None:
        return {"given": type(model).__name__, **_object_digest(model)}
    ref = spec.model
    if ref is None or getattr(ref.kind, "value", ref.kind) not in _FILE_MODELS:
        return None  # a builtin architecture or python(...) code: the spec says it all
    from .models_io import resolve_path

    path = resolve_path(ref)  # the run would fail on a missing file: fail before writing
    return {"file": str(path), "sha256": file_sha256(path)}


def _data_fingerprint(spec: Any, data: Any) -> dict | None:
    if data is not None:
        return {"given": type(data).__name__, **_object_digest(data)}
    ref = spec.data
    if ref is not None and ref.path is not None:
        path = beside_spec(ref.path, ref.span)
        if not path.exists():
            raise UsageError(
                f"data {getattr(ref.source, 'value', ref.source)} path {ref.path} not found "
                "(relative paths are tried from the current directory and from the spec's "
                "directory)."
            )
    return None


def _object_digest(obj: Any) -> dict:
    """A digest of a model's state dict or of array data handed to `run()`; `{}` for objects
    whose contents cannot be read cheaply (a DataLoader): those are not compared."""
    digest = hashlib.sha256()
    if callable(getattr(obj, "state_dict", None)):
        for name, tensor in obj.state_dict().items():
            digest.update(name.encode())
            _feed(digest, tensor)
        return {"sha256": digest.hexdigest()}
    return {"sha256": digest.hexdigest()} if _feed(digest, obj) else {}


def _feed(digest: Any, value: Any) -> bool:
    """Hash arrays, tensors and containers of them; False for anything else."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        value = value.float() if str(value.dtype) == "torch.bfloat16" else value
        value = value.numpy()
    if hasattr(value, "tobytes") and hasattr(value, "dtype") and hasattr(value, "shape"):
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.tobytes())
        return True
    if isinstance(value, int | float | str | bool) or value is None:
        digest.update(repr(value).encode())
        return True
    if isinstance(value, dict):
        return all(_feed(digest, k) and _feed(digest, v) for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return all(_feed(digest, v) for v in value)
    fields = getattr(type(value), "__attrs_attrs__", None)  # DataSplits, ArrayDataset
    if fields is not None:
        return all(_feed(digest, getattr(value, f.name)) for f in fields)
    return False


# ---------------------------------------------------------------- what differs, in words
def differences(old: Any, new: Any, path: str = "", limit: int = 4) -> list[str]:
    """Leaf-level differences between two canonical IR JSON values, as `path: old -> new`."""
    out: list[str] = []
    _diff(old, new, path, out)
    return out if len(out) <= limit else [*out[:limit], f"and {len(out) - limit} more"]


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        if old.get("node") != new.get("node"):
            out.append(f"{path or 'spec'}: {_compact(old)} -> {_compact(new)}")
            return
        for key in [k for k in old if k != "node"] + [k for k in new if k not in old]:
            _diff(old.get(key), new.get(key), f"{path}.{key}" if path else key, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        if _is_options(old) and _is_options(new):
            olds = {o["name"]: o.get("value") for o in old}
            news = {o["name"]: o.get("value") for o in new}
            for name in [*olds, *(n for n in news if n not in olds)]:
                _diff(olds.get(name), news.get(name), f"{path}.{name}", out)
            return
        labels = _labels(path, old, new)
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else None
            b = new[i] if i < len(new) else None
            if a is None or b is None:
                out.append(f"{labels[i]}: {_compact(a)} -> {_compact(b)}")
            else:
                _diff(a, b, labels[i], out)
        return
    out.append(f"{path}: {_compact(old)} -> {_compact(new)}")


def _is_options(items: list) -> bool:
    return all(isinstance(o, dict) and o.get("node") == "Option" for o in items)


def _labels(path: str, old: list, new: list) -> list[str]:
    """`actions` items are named by their kind (`train`, `certify`); others by index."""
    if path == "actions":
        kinds = [
            (x.get("node", "") if isinstance(x, dict) else "").lower()
            for x in (old if len(old) >= len(new) else new)
        ]
        if len(set(kinds)) == len(kinds) and all(kinds):
            return kinds
    return [f"{path}[{i}]" for i in range(max(len(old), len(new)))]


def _compact(value: Any, limit: int = 60) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict) and "node" in value:
        fields = [
            f"{k}={_compact(v)}"
            for k, v in value.items()
            if k != "node" and v not in (None, [], {})
        ]
        text = f"{value['node']}({', '.join(fields)})" if fields else value["node"]
    elif isinstance(value, list):
        text = "[" + ", ".join(_compact(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------- locking
class DirLock:
    """An exclusive `flock` on `DIR/.threatlang.lock`, which names its holder (pid, host)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK
        self._fd: int | None = None
        self.stale: str | None = None  # the holder named by a lock file left by a dead run

    def acquire(self) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise UsageError(
                    f"cannot write in run directory {self.path.parent}: "
                    f"{err.strerror or err}; pick another --output."
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd) or "another process"
                os.close(fd)
                raise UsageError(
                    f"another run ({holder}) is writing to {self.path.parent}; wait for it to "
                    "finish or pick another --output."
                ) from None
            except OSError:  # no flock here (some network file systems): pid check instead
                if not self._claim_by_pid(fd):
                    continue
                return
            try:  # the holder we waited on may have removed the file: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.stale = _read(fd) or None
            self._write(fd)
            return
        raise UsageError(f"cannot lock run directory {self.path.parent}; try again.")

    def _claim_by_pid(self, fd: int) -> bool:
        holder = _read(fd)
        pid, host = _holder(holder)
        if pid is not None and host == socket.gethostname() and _alive(pid):
            os.close(fd)
            raise UsageError(
                f"another run ({holder}) is writing to {self.path.parent}; wait for it to "
                "finish or pick another --output."
            )
        self.stale = holder or None
        self._write(fd)
        return True

    def _write(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        since = datetime.datetime.now().isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _read(fd: int) -> str:
    return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()


def _holder(text: str) -> tuple[int | None, str | None]:
    parts = text.split()
    if len(parts) >= 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "on":
        return int(parts[1]), parts[3]
    return None, None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------ the directory
class RunDir:
    """A locked run directory; `open_run_dir` decides whether this run may write into it."""

    def __init__(self, path: Path, ident: dict, lock: DirLock):
        self.path = path
        self.identity = ident
        self.lock = lock
        self.mode = "fresh"  # fresh | resume | overwrite
        self.manifest: dict = {}
        self._old: dict | None = None  # the manifest found (or one rebuilt from spec.json)
        self._ignore: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, tuple[int, int]] = {}

    # -- deciding
    def decide(self, resume: bool, overwrite: bool) -> None:
        entries = sorted(
            p.name for p in self.path.iterdir() if p.name != LOCK and not _is_temp(p.name)
        )
        results = [n for n in entries if n not in (MANIFEST, SPEC) and not self._empty(n)]
        if resume:
            self._old = self._read_old()
            if self._old is None:
                if results:
                    raise UsageError(
                        f"cannot resume {self.path}: it holds {_names(results)} but no "
                        f"{MANIFEST} or {SPEC} saying which spec made them; replace them with "
                        "--overwrite or pick another --output."
                    )
                return
            problems = self._differences(has_records=RECORDS in results)
            if problems:
                raise UsageError(
                    f"cannot resume {self.path}: {'; '.join(problems)}; resume with what the "
                    "run started with, replace it with --overwrite, or pick another --output."
                )
            self.mode = "resume"
            return
        if not results:  # at most the bookkeeping of a run that failed before any result
            return
        with contextlib.suppress(UsageError):  # only to name the run, and its checkpoints
            self._old = self._read_old()
        if not overwrite:
            raise UsageError(
                f"{self.path} already holds {self._describe(results)}; pass --resume to "
                "continue that run, --overwrite to replace it, or pick another --output."
            )
        if not {MANIFEST, SPEC, RECORDS, SUMMARY} & set(entries):
            raise UsageError(
                f"{self.path} is not a run directory (it holds {_names(results)} but no "
                f"{MANIFEST}, {RECORDS} or {SUMMARY}); --overwrite replaces only runs: pick "
                "another --output."
            )
        self.mode = "overwrite"

    def _empty(self, name: str) -> bool:
        path = self.path / name
        return name == RECORDS and path.is_file() and path.stat().st_size == 0

    def _describe(self, results: list[str]) -> str:
        what = []
        if RECORDS in results:
            n = sum(1 for line in (self.path / RECORDS).read_bytes().splitlines() if line.strip())
            what.append(f"{n} record{'s' if n != 1 else ''}")
        if SUMMARY in results:
            what.append("a summary")
        rest = [n for n in results if n not in (RECORDS, SUMMARY)]
        if rest:
            what.append(_names(rest))
        name = (self._old or {}).get("spec_name")
        spec = f" of spec {name!r}" if name else ""
        return f"a run{spec} ({', '.join(what)})"

    def _read_old(self) -> dict | None:
        manifest, spec = self.path / MANIFEST, self.path / SPEC
        if manifest.exists():
            data = _load_json(manifest)
            if not isinstance(data, dict) or data.get("format") != FORMAT or "spec" not in data:
                raise UsageError(
                    f"{manifest} is not a run manifest ({FORMAT}); replace the run with "
                    "--overwrite or pick another --output."
                )
            return data
        if spec.exists():  # a run directory from before manifests: its spec.json says enough
            doc = _load_json(spec)
            try:
                canon = _strip_spans(doc["specs"][0])
                return {"spec_name": canon["name"], "spec_hash": spec_hash(canon), "spec": canon}
            except (KeyError, IndexError, TypeError):
                raise UsageError(
                    f"{spec} is not a threatlang IR document; replace the run with "
                    "--overwrite or pick another --output."
                ) from None
        return None

    def _differences(self, has_records: bool) -> list[str]:
        old, new = self._old or {}, self.identity
        out: list[str] = []
        if old.get("spec_hash") != new["spec_hash"]:
            diffs = differences(old.get("spec"), new["spec"])
            out.append(f"the spec differs ({', '.join(diffs) or 'IR format'})")
        if old.get("seed") is not None and old["seed"] != new["seed"]:
            out.append(f"seed: {old['seed']} -> {new['seed']}")
        checkpoints = old.get("checkpoints") or {}
        for key in ("model", "data"):
            if key in old and old[key] != new[key]:
                if key == "model" and checkpoints:
                    continue  # the records came from the trained checkpoints, checked below
                out.append(f"{key}: {_fingerprint_text(old[key])} -> {_fingerprint_text(new[key])}")
        if has_records:  # the records came from these files: a different one would mix models
            for rel, digest in checkpoints.items():
                path = self.path / rel
                if not path.exists():
                    out.append(f"checkpoint {rel} that its records came from is missing")
                elif file_sha256(path) != digest:
                    out.append(f"checkpoint {rel} changed since the run wrote it")
        return out

    # -- writing
    def begin(self, backend: str, spec_document: dict) -> None:
        """Claim the directory for this run: clear what --overwrite replaces, write spec.json
        and the manifest (atomically), and start noting checkpoints."""
        now = _now()
        if self.mode == "overwrite":
            old_checkpoints = (self._old or {}).get("checkpoints") or {}
            for name in [*REPLACED, *old_checkpoints]:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / name).unlink()
            self._ignore = self._scan()  # stale checkpoints no manifest listed: not this run's
        if self.mode == "resume" and self._old is not None and "format" in self._old:
            self.manifest = dict(self._old)
            self.manifest["resumed"] = [*self.manifest.get("resumed", []), now]
            self.manifest["backend"] = backend
        else:
            from . import __version__

            ident = {k: v for k, v in self.identity.items() if k != "spec"}
            self.manifest = {
                "format": FORMAT,
                **ident,
                "backend": backend,
                "threatlang": __version__,
                "started": now,
                "finished": None,
                "checkpoints": {},
                "spec": self.identity["spec"],
            }
        if self.mode != "resume" or not (self.path / SPEC).exists():
            write_atomic(self.path / SPEC, json.dumps(spec_document, indent=2) + "\n")
        self._write_manifest()
        self.note_checkpoints()

    def note_checkpoints(self) -> None:
        """Hash checkpoints (`*.pt`) that appeared or changed since the last look; called after
        every record, so each record's model is on file before the record is relied on."""
        found = {rel: key for rel, key in self._scan().items() if self._ignore.get(rel) != key}
        if found == self._seen:
            return
        checkpoints = self.manifest.setdefault("checkpoints", {})
        for rel, key in found.items():
            if self._seen.get(rel) != key:
                with contextlib.suppress(FileNotFoundError):
                    checkpoints[rel] = file_sha256(self.path / rel)
        self._seen = found
        self._write_manifest()

    def finish(self) -> None:
        self.note_checkpoints()
        self.manifest["finished"] = _now()
        self._write_manifest()

    def _scan(self) -> dict[str, tuple[int, int]]:
        out = {}
        for p in self.path.rglob("*.pt"):
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                out[p.relative_to(self.path).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def _write_manifest(self) -> None:
        write_atomic(self.path / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")


@contextlib.contextmanager
def open_run_dir(
    path: Path, ident: dict, *, resume: bool = False, overwrite: bool = False
) -> Iterator[RunDir]:
    """The run directory at `path`, locked for this process until the block ends.

    Refuses (with a `UsageError`) an output path that cannot be a directory, a directory
    another run holds, a resume of a different run, and results it was not told to replace.
    """
    if resume and overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it: pass one.")
    path = output_dir(path)
    lock = DirLock(path)
    lock.acquire()
    try:
        run_dir = RunDir(path, ident, lock)
        run_dir.decide(resume, overwrite)
        yield run_dir
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UsageError(
            f"the disk holding {path} is full ({os.strerror(err.errno)}); the records written "
            "so far are kept: free some space and rerun with --resume."
        ) from None
    finally:
        lock.release()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(
            f"{path} is unreadable ({str(err).splitlines()[0]}); replace the run with "
            "--overwrite or pick another --output."
        ) from None


def _fingerprint_text(fp: dict | None) -> str:
    if fp is None:
        return "the spec's"
    if "file" in fp:
        return f"{Path(fp['file']).name} sha256 {fp['sha256'][:12]}"
    digest = fp.get("sha256")
    return f"a {fp.get('given')} object" + (f" sha256 {digest[:12]}" if digest else "")


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
