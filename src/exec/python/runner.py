"""nbmemo worker runner, protocol version 1 (see src/exec/PROTOCOL.md).

One long-lived worker process: reads `exec` / `drop` / `shutdown` frames on a private copy of
fd 0, answers with `hello` and `result` frames on a private copy of fd 1. Self-contained:
stdlib + cloudpickle (IPython and matplotlib are used when the cell's environment has them). It
is embedded in the nbmemo binary; the parent starts `python -u -c <bootstrap>` and sends this
source over stdin (src/exec/worker.rs), or runs it as a script: it never relies on its own
path. Runs on CPython 3.9 - 3.13.

Output capture. For the duration of a cell, fd 1 and fd 2 point at fresh temporary files and
`sys.stdout` / `sys.stderr` are replaced by text streams that write straight into those files
(unbuffered). The files therefore hold the exact bytes written at any level, in order, for each
fd (Python prints, `os.write(1, ...)`, C `printf` after `fflush`, subprocesses). To interleave
the two streams and the rich outputs, the runner records a *mark* (current size of both files,
after flushing C stdio) whenever Python switches from one stream to the other and before every
rich output (`display()`, the last expression, figures, the error). Bytes between two marks are
emitted in order: the stream Python was writing first, then the other one. Consecutive chunks of
one stream merge into one `stream` output. So the only imprecision is the relative order of C
level writes to *different* fds between two Python-level marks. Between cells fd 1 points at
the worker's stderr (never at the protocol pipe) and fd 0 at /dev/null.

Isolation. Each exec gets a fresh module `__main__` (also `sys.modules["__main__"]` while the
cell runs). Afterwards the runner restores the std streams (fresh ones if the cell closed the
originals), fds 0-2, builtins, sys.path, sys.argv, the display/except hooks, trace/profile
functions, the recursion limit, gc and SIGINT (ignored between cells, KeyboardInterrupt during
a cell). Library state (os.environ, random generators, warnings filters, rcParams) is left
alone: that is the business of the state probes.

Values. Returned names are grouped by shared objects, found by walking object graphs from the
values (gc.get_referents, at most WALK_BUDGET objects per exec; immutable atoms, classes,
modules, functions of other modules, enum members, numpy dtypes, pandas indexes are ignored;
numpy views reach their `.base`; by-value functions are walked through their defaults,
closures and attributes, never their globals). A group that cannot be pickled stays in the
worker as a resident group. Classes defined by a cell get deterministic cloudpickle tracker
ids, so equal code gives equal bytes in every worker.
"""

import _ast as ast  # the C module: `import ast` costs milliseconds at start-up
import binascii
import builtins
import codecs
import gc
import io
import json
import linecache
import os
import pickle
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import types

try:
    from _blake2 import blake2b  # without loading OpenSSL as hashlib does
except ImportError:  # pragma: no cover
    from hashlib import blake2b

PROTOCOL_VERSION = 1
WALK_BUDGET = 100_000  # objects visited per exec when looking for shared objects

_MISSING = object()
_CO_NEWLOCALS = 0x0002
_CO_COROUTINE = 0x0080


def _future_mask():
    import __future__

    mask = 0
    for name in __future__.all_feature_names:
        mask |= getattr(__future__, name).compiler_flag
    return mask


_FUTURE_MASK = _future_mask()
_COMPILE_FLAGS = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)


class _State:
    """Everything the runner keeps between frames."""

    cloudpickle = None
    chan = None
    err_fd = None  # private copy of the worker's real stderr
    devnull_fd = None
    residents = {}
    resident_counter = 0
    capture = None  # the _Capture of the running cell, if any
    fflush = None
    ipython_available = False
    ipython_version = None
    pretty = None  # IPython.lib.pretty.pretty, once imported
    pretty_tried = False
    shell = None  # IPython shell, created for the first cell using IPython syntax
    loop = None  # asyncio loop for cells with top-level await
    std = None  # the original (stdin, stdout, stderr) objects, or their successors
    builtins_snapshot = None
    sys_path = None
    sys_argv = None
    recursion_limit = None
    main_module = None
    displayhook = None
    excepthook = None
    trace = None
    profile = None
    registered_sources = set()  # linecache entries made by the runner


ST = _State()


# ---------------------------------------------------------------------------------------------
# Framing


class _Channel:
    def __init__(self, rfd, wfd):
        self.r = io.FileIO(rfd, "rb", closefd=True)
        self.w = io.FileIO(wfd, "wb", closefd=True)

    def _read_exact(self, n, eof_ok=False):
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        while pos < n:
            got = self.r.readinto(view[pos:])
            if not got:
                if eof_ok and pos == 0:
                    return None
                raise EOFError("request pipe closed in the middle of a frame")
            pos += got
        return buf

    def read_frame(self):
        head = self._read_exact(8, eof_ok=True)
        if head is None:
            return None
        header_len, n_blobs = struct.unpack("<II", head)
        header = json.loads(bytes(self._read_exact(header_len)).decode("utf-8"))
        blobs = []
        for _ in range(n_blobs):
            (blob_len,) = struct.unpack("<Q", self._read_exact(8))
            blobs.append(self._read_exact(blob_len))
        return header, blobs

    def _write_all(self, data):
        view = memoryview(data)
        while len(view):
            n = self.w.write(view)
            if n is None:
                continue
            view = view[n:]

    def write_frame(self, header, blobs=()):
        data = json.dumps(header, ensure_ascii=False, allow_nan=False)
        data = data.encode("utf-8", "replace")
        self._write_all(struct.pack("<II", len(data), len(blobs)) + data)
        for blob in blobs:
            self._write_all(struct.pack("<Q", len(blob)))
            self._write_all(blob)


def _write_fd(fd, data):
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


def _diag(msg):
    """A diagnostic line on the worker's stderr (never on the protocol)."""
    try:
        _write_fd(ST.err_fd if ST.err_fd is not None else 2, ("nbmemo runner: %s\n" % msg).encode())
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# Output capture


def _flush_c():
    for s in (sys.__stdout__, sys.__stderr__):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass
    if ST.fflush is not None:
        try:
            ST.fflush(None)
        except Exception:
            pass


class _CellStream(io.TextIOBase):
    """`sys.stdout` / `sys.stderr` during a cell: unbuffered, straight into the capture file."""

    encoding = "utf-8"
    errors = "backslashreplace"
    line_buffering = False

    def __init__(self, cap, stream, fileno):
        super().__init__()
        self._cap = cap
        self._stream = stream
        self._fileno = fileno
        self.name = "<%s>" % stream
        self.buffer = _CellBinaryStream(cap, stream, fileno)

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if s:
            self._cap.write(self._stream, s.encode("utf-8", "backslashreplace"))
        return len(s)

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fileno

    def flush(self):
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def reconfigure(self, **kwargs):
        pass


class _CellBinaryStream(io.BufferedIOBase):
    def __init__(self, cap, stream, fileno):
        super().__init__()
        self._cap = cap
        self._stream = stream
        self._fileno = fileno
        self.name = "<%s>" % stream

    def write(self, b):
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        data = bytes(b)
        if data:
            self._cap.write(self._stream, data)
        return len(data)

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fileno

    def flush(self):
        pass


class _Capture:
    """fd-level capture of one cell, plus the ordered record of its rich outputs."""

    def __init__(self):
        self.files = {"stdout": tempfile.TemporaryFile(), "stderr": tempfile.TemporaryFile()}
        self.fds = {k: f.fileno() for k, f in self.files.items()}
        self.marks = []  # (stdout size, stderr size, item)
        self.current = None  # stream Python wrote to last
        self.active = False
        self.final = (0, 0)

    def sizes(self):
        return os.fstat(self.fds["stdout"]).st_size, os.fstat(self.fds["stderr"]).st_size

    def mark(self, item):
        _flush_c()
        o, e = self.sizes()
        self.marks.append((o, e, item))

    def write(self, stream, data):
        if not self.active:  # a stream object that outlived its cell
            _write_fd(ST.err_fd, data)
            return
        if self.current != stream:
            self.mark(("stream", stream))
            self.current = stream
        _write_fd(self.fds[stream], data)

    def add_output(self, output, display_id=None):
        self.mark(("output", output, display_id))

    def start(self):
        _flush_c()
        os.dup2(self.fds["stdout"], 1)
        os.dup2(self.fds["stderr"], 2)
        sys.stdout = _CellStream(self, "stdout", 1)
        sys.stderr = _CellStream(self, "stderr", 2)
        self.active = True

    def stop(self):
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
        _flush_c()
        self.final = self.sizes()
        self.active = False
        os.dup2(ST.err_fd, 1)
        os.dup2(ST.err_fd, 2)
        data = {}
        for k, f in self.files.items():
            try:
                f.seek(0)
                data[k] = f.read()
            except Exception:
                data[k] = b""
            try:
                f.close()
            except Exception:
                pass
        return data

    def build_outputs(self, data):
        """The nbformat outputs, in order (see the module docstring)."""
        decoders = {k: codecs.getincrementaldecoder("utf-8")("replace") for k in data}
        pos = {"stdout": 0, "stderr": 0}
        outputs = []
        by_id = {}
        state = {"clear_pending": False}

        def add(out):
            if state["clear_pending"]:
                outputs.clear()
                by_id.clear()
                state["clear_pending"] = False
            if (
                out["output_type"] == "stream"
                and outputs
                and outputs[-1]["output_type"] == "stream"
                and outputs[-1]["name"] == out["name"]
            ):
                outputs[-1]["text"] += out["text"]
            else:
                outputs.append(out)

        def emit(stream, upto, final=False):
            upto = min(max(upto, pos[stream]), len(data[stream]))
            text = decoders[stream].decode(data[stream][pos[stream]:upto], final)
            pos[stream] = upto
            if text:
                add({"output_type": "stream", "name": stream, "text": text})

        current = None
        for o, e, item in self.marks + [(self.final[0], self.final[1], None)]:
            order = ("stderr", "stdout") if current == "stderr" else ("stdout", "stderr")
            upto = {"stdout": o, "stderr": e}
            for stream in order:
                emit(stream, upto[stream])
            if item is None:
                continue
            kind = item[0]
            if kind == "stream":
                current = item[1]
            elif kind == "output":
                add(item[1])
                if item[2] is not None:
                    by_id.setdefault(item[2], []).append(item[1])
            elif kind == "clear":
                if item[1]:
                    state["clear_pending"] = True
                else:
                    outputs.clear()
                    by_id.clear()
            elif kind == "update":
                for out in by_id.get(item[1], []):
                    out["data"] = item[2]
                    out["metadata"] = item[3]
        for stream in ("stdout", "stderr"):
            emit(stream, len(data[stream]), final=True)
        return outputs


# ---------------------------------------------------------------------------------------------
# Rich display


_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("application/pdf", "_repr_pdf_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
    ("application/javascript", "_repr_javascript_"),
)


def _report_format_error():
    """A repr method raised: show its traceback on stderr, as IPython does, and go on."""
    try:
        traceback.print_exc(file=sys.stderr)
    except Exception:
        pass


def _get_method(obj, name):
    if isinstance(obj, type):
        return None
    try:
        if getattr(obj, "_ipython_canary_method_should_not_exist_", None) is not None:
            return None  # an object that claims to have every attribute
        method = getattr(obj, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def _load_pretty():
    if ST.pretty_tried:
        return
    ST.pretty_tried = True
    if not ST.ipython_available:
        return
    try:
        from IPython.lib.pretty import pretty

        ST.pretty = pretty
    except Exception:
        ST.pretty = None


def _plain(obj):
    _load_pretty()
    if ST.pretty is not None:
        return ST.pretty(obj)
    return repr(obj)


def _b64(data):
    return binascii.b2a_base64(bytes(data), newline=False).decode("ascii")


def _is_json_mime(mime):
    return mime == "application/json" or mime.endswith("+json")


def _is_text_mime(mime):
    return (
        mime.startswith("text/")
        or mime == "image/svg+xml"
        or mime.endswith("+xml")
        or mime in ("application/javascript", "application/xml", "application/x-latex")
        or _is_json_mime(mime)
    )


def _mime_value(mime, value):
    """A repr method's value as nbformat stores it (base64 for binary), or _MISSING to drop it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not _is_text_mime(mime):
            return _b64(value)
        value = bytes(value).decode("utf-8", "replace")
    if _is_json_mime(mime):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except Exception:
                return _MISSING
        try:
            json.dumps(value, allow_nan=False)
        except Exception:
            return _MISSING
        return value
    if not isinstance(value, str):
        return _MISSING
    return value


def _clean_bundle(bundle):
    data = {}
    if isinstance(bundle, dict):
        for mime, value in bundle.items():
            value = _mime_value(str(mime), value)
            if value is not _MISSING:
                data[str(mime)] = value
    return data


def _figure_png(fig):
    """PNG bytes of a matplotlib figure, as IPython's inline backend makes them; None if empty."""
    if not fig.axes and not fig.lines:
        return None
    buf = io.BytesIO()
    fig.canvas.print_figure(
        buf,
        format="png",
        bbox_inches="tight",
        facecolor=fig.get_facecolor(),
        edgecolor=fig.get_edgecolor(),
        dpi=fig.dpi,
    )
    return buf.getvalue()


def _is_figure(obj):
    mod = sys.modules.get("matplotlib.figure")
    return mod is not None and isinstance(obj, getattr(mod, "Figure", ()))


def _format(obj, include=None, exclude=None):
    """(data, metadata) for obj, as IPython's DisplayFormatter.format would give them."""
    data, md = {}, {}
    method = _get_method(obj, "_repr_mimebundle_")
    if method is not None:
        try:
            res = method(include=include, exclude=exclude)
        except Exception:
            _report_format_error()
            res = None
        bundle, bundle_md = (res if isinstance(res, tuple) and len(res) == 2 else (res, None))
        data.update(_clean_bundle(bundle))
        if isinstance(bundle_md, dict):
            md.update(bundle_md)
    if _is_figure(obj) and "image/png" not in data:
        try:
            png = _figure_png(obj)
            if png is not None:
                data["image/png"] = _b64(png)
        except Exception:
            _report_format_error()
    if "text/plain" not in data:
        try:
            data["text/plain"] = _plain(obj)
        except Exception:
            _report_format_error()
    for mime, name in _REPR_METHODS:
        if mime in data:
            continue
        method = _get_method(obj, name)
        if method is None:
            continue
        try:
            value = method()
        except NotImplementedError:
            continue
        except Exception:
            _report_format_error()
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, value_md = value
            if isinstance(value_md, dict) and value is not None:
                md[mime] = value_md
        if value is None:
            continue
        value = _mime_value(mime, value)
        if value is not _MISSING:
            data[mime] = value
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data, md


class _DisplayHandle:
    """What `display(..., display_id=...)` returns without IPython (its DisplayHandle API)."""

    def __init__(self, display_id):
        self.display_id = display_id

    def __reduce__(self):  # never drag the runner into a pickle
        return (types.SimpleNamespace, (), {"display_id": self.display_id})

    def __repr__(self):
        return "<DisplayHandle display_id=%s>" % self.display_id

    def display(self, obj, **kwargs):
        _display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj, **kwargs):
        _update_display(obj, display_id=self.display_id, **kwargs)


def _new_display_id():
    return os.urandom(16).hex()


def _display(
    *objs,
    include=None,
    exclude=None,
    metadata=None,
    transient=None,
    display_id=None,
    raw=False,
    clear=False,
    **kwargs
):
    """`display()` in cells (IPython.display.display semantics, outputs go to the cell)."""
    cap = ST.capture
    if cap is None or not cap.active:
        print(*objs)
        return None
    if clear:
        _clear_output(wait=True)
    if transient and not display_id:
        display_id = transient.get("display_id")
    if display_id is True:
        display_id = _new_display_id()
    for obj in objs:
        if raw:
            data = _clean_bundle(obj)
            md = dict(metadata or {})
        else:
            if _get_method(obj, "_ipython_display_") is not None:
                obj._ipython_display_()
                continue
            data, md = _format(obj, include=include, exclude=exclude)
            if metadata:
                md.update(metadata)
        if not data:
            continue
        out = {"output_type": "display_data", "data": data, "metadata": md}
        cap.add_output(out, display_id)
    if display_id:
        return _display_handle(display_id)
    return None


def _display_handle(display_id):
    if ST.ipython_available:
        try:
            from IPython.core.display_functions import DisplayHandle

            return DisplayHandle(display_id)  # pickles by reference; its methods call ours
        except Exception:
            pass
    return _DisplayHandle(display_id)


def _update_display(obj, *, display_id, **kwargs):
    cap = ST.capture
    if cap is None or not cap.active:
        return
    if kwargs.get("raw"):
        data = _clean_bundle(obj)
        md = dict(kwargs.get("metadata") or {})
    else:
        data, md = _format(obj, include=kwargs.get("include"), exclude=kwargs.get("exclude"))
        if kwargs.get("metadata"):
            md.update(kwargs["metadata"])
    cap.mark(("update", display_id, data, md))


def _clear_output(wait=False):
    cap = ST.capture
    if cap is not None and cap.active:
        cap.mark(("clear", bool(wait)))


def _publish_display_data(data, metadata=None, source=None, *, transient=None, **kwargs):
    cap = ST.capture
    if cap is None or not cap.active:
        return
    clean = _clean_bundle(data)
    display_id = (transient or {}).get("display_id")
    cap.add_output(
        {"output_type": "display_data", "data": clean, "metadata": dict(metadata or {})}, display_id
    )


def _show_figures():
    """Display every open pyplot figure, then close them all (what the inline backend does)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        from matplotlib._pylab_helpers import Gcf

        managers = list(Gcf.get_all_fig_managers())
    except Exception:
        return
    if not managers:
        return
    for manager in managers:
        try:
            _display(manager.canvas.figure)
        except Exception:
            _report_format_error()
    try:
        plt.close("all")
    except Exception:
        _report_format_error()


# ---------------------------------------------------------------------------------------------
# Post-import patches (IPython's display functions, pyplot.show)


def _patch_ipython_display(module):
    replacements = {
        "display": _display,
        "update_display": _update_display,
        "clear_output": _clear_output,
        "publish_display_data": _publish_display_data,
    }
    namespace = vars(module)  # not getattr: IPython.core.display warns on deprecated names
    for name, func in replacements.items():
        old = namespace.get(name)
        if old is not None and (getattr(old, "__module__", None) or "").startswith("IPython."):
            namespace[name] = func


def _patch_pyplot(module):
    original = getattr(module, "show", None)
    if original is None or getattr(original, "_nbmemo", False):
        return

    def show(*args, **kwargs):
        cap = ST.capture
        if cap is None or not cap.active:
            return original(*args, **kwargs)
        _show_figures()

    show._nbmemo = True
    show.__doc__ = original.__doc__
    module.show = show


_POST_IMPORT = {
    "IPython.core.display_functions": _patch_ipython_display,
    "IPython.core.display": _patch_ipython_display,
    "matplotlib.pyplot": _patch_pyplot,
}


class _PatchingLoader:
    def __init__(self, loader, hook):
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        try:
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader
        except Exception:
            pass
        self._loader.exec_module(module)
        try:
            self._hook(module)
        except Exception as e:
            _diag("patching %s failed: %r" % (module.__name__, e))


class _PostImportFinder:
    """Runs a patch right after some modules are imported (wherever the import comes from)."""

    def __init__(self):
        self._busy = set()

    def find_spec(self, fullname, path=None, target=None):
        hook = _POST_IMPORT.get(fullname)
        if hook is None or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            import importlib.util

            spec = importlib.util.find_spec(fullname)
        except Exception:
            spec = None
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _PatchingLoader(spec.loader, hook)
        return spec

    def invalidate_caches(self):
        pass


def _install_post_import():
    sys.meta_path.insert(0, _PostImportFinder())
    for name, hook in _POST_IMPORT.items():
        if name in sys.modules:
            hook(sys.modules[name])


# ---------------------------------------------------------------------------------------------
# Loading inputs: by-value functions resolve their globals in the cell namespace


def _cp_modules():
    """cloudpickle's implementation modules (3.x: one; 1.x/2.x: two, sharing helpers)."""
    return [m for m in (sys.modules.get("cloudpickle.cloudpickle"),
                        sys.modules.get("cloudpickle.cloudpickle_fast")) if m is not None]


def _cp_attr(name):
    for m in _cp_modules():
        obj = getattr(m, name, None)
        if obj is not None:
            return obj
    return None


def _make_unpickler(ns):
    """An Unpickler whose by-value functions take `ns` as their globals.

    cloudpickle rebuilds a by-value function with `_make_function(code, base_globals, ...)`
    and fills it with `_function_setstate`, which updates its globals with the globals it
    captured. For functions of the notebook (`__name__ == "__main__"` in the globals they came
    from) the hooks below use the cell namespace instead and only `setdefault` the captured
    values into it: the cell's explicit inputs, inserted after each blob is loaded, win.
    """
    orig_make = _cp_attr("_make_function")
    orig_setstate = _cp_attr("_function_setstate")

    def make_function(code, globals, name, argdefs, closure):
        if globals.get("__name__", "__main__") != "__main__":
            return orig_make(code, globals, name, argdefs, closure)
        return types.FunctionType(code, ns, name, argdefs, closure)

    def function_setstate(obj, state):
        if obj.__globals__ is not ns:
            return orig_setstate(obj, state)
        state, slotstate = state
        slotstate = dict(slotstate)
        captured = slotstate.pop("__globals__", None) or {}
        for k, v in captured.items():
            ns.setdefault(k, v)
        slotstate["__globals__"] = {}
        orig_setstate(obj, (state, slotstate))
        ns["__builtins__"] = builtins

    class CellUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            obj = super().find_class(module, name)
            if orig_make is not None and obj is orig_make:
                return make_function
            if orig_setstate is not None and obj is orig_setstate:
                return function_setstate
            return obj

    return CellUnpickler


class _TrackerIds:
    """Deterministic class tracker ids while the runner pickles.

    cloudpickle tags every class it pickles by value with a random id (uuid4), so the same
    class defined by the same cell would pickle to different bytes in every worker. While the
    runner pickles, a class that has no id yet (it was created by this cell) gets
    blake2(cell filename, source, inputs, n) instead, n counting such classes in the order the
    runner pickles them, which is deterministic. Classes that arrived in inputs keep the id
    they came with.
    """

    def __init__(self, filename, source, inputs, blobs):
        self.mod = sys.modules.get("cloudpickle.cloudpickle")
        self.parts = (filename, source, inputs, blobs)
        self.key = None
        self.counter = 0
        self.orig = getattr(self.mod, "_get_or_create_tracker_id", None)
        self.ok = all(
            hasattr(self.mod, n)
            for n in ("_DYNAMIC_CLASS_TRACKER_BY_CLASS", "_DYNAMIC_CLASS_TRACKER_BY_ID",
                      "_DYNAMIC_CLASS_TRACKER_LOCK")
        ) and self.orig is not None
        # cloudpickle 1.x/2.x import the helper into cloudpickle_fast too: patch every copy.
        self.holders = [m for m in _cp_modules()
                        if getattr(m, "_get_or_create_tracker_id", None) is self.orig]

    def _key(self):
        if self.key is None:
            filename, source, inputs, blobs = self.parts
            h = blake2b(digest_size=20)
            h.update(json.dumps([filename, source, inputs], sort_keys=True, default=str).encode())
            for b in blobs:
                h.update(blake2b(b, digest_size=20).digest())
            self.key = h.digest()
            self.parts = None
        return self.key

    def _get_or_create(self, class_def):
        mod = self.mod
        with mod._DYNAMIC_CLASS_TRACKER_LOCK:
            tid = mod._DYNAMIC_CLASS_TRACKER_BY_CLASS.get(class_def)
            if tid is None:
                self.counter += 1
                h = blake2b(self._key(), digest_size=16)
                h.update(("%d:%s" % (self.counter, getattr(class_def, "__qualname__", ""))).encode())
                tid = h.hexdigest()
                mod._DYNAMIC_CLASS_TRACKER_BY_CLASS[class_def] = tid
                mod._DYNAMIC_CLASS_TRACKER_BY_ID[tid] = class_def
        return tid

    def __enter__(self):
        if self.ok:
            for m in self.holders:
                m._get_or_create_tracker_id = self._get_or_create
        return self

    def __exit__(self, *exc):
        if self.ok:
            for m in self.holders:
                m._get_or_create_tracker_id = self.orig
        return False


def _fingerprint(value):
    try:
        return blake2b(ST.cloudpickle.dumps(value, protocol=5), digest_size=20).digest()
    except BaseException:
        return None


# ---------------------------------------------------------------------------------------------
# Shared objects between names


_ATOMS = frozenset(
    [int, float, complex, str, bytes, bool, type(None), type(Ellipsis), type(NotImplemented),
     range, slice, types.CodeType, types.BuiltinFunctionType, type(len.__call__),
     types.MemberDescriptorType, types.GetSetDescriptorType]
)


def _walk_kinds():
    """(types never shared, types shared but not walked into, ndarray type) for this run.

    Never shared: classes, modules, plain `object()` sentinels, library enum members, numpy
    dtypes, pandas indexes and dtypes (immutable, so sharing them is no aliasing), pandas'
    compiled internals. Not walked into: pandas DataFrames/Series under copy-on-write (they
    never alias each other's data, only their identity matters).
    """
    skip = [type, types.ModuleType]
    opaque = []
    enum_mod = sys.modules.get("enum")
    if enum_mod is not None:
        skip.append(enum_mod.Enum)
    np = sys.modules.get("numpy")
    ndarray = None
    if np is not None:
        ndarray = getattr(np, "ndarray", None)
        if isinstance(getattr(np, "dtype", None), type):
            skip.append(np.dtype)
    pd = sys.modules.get("pandas")
    if pd is not None:
        try:
            skip.append(pd.Index)
            skip.append(pd.api.extensions.ExtensionDtype)
            major = int(pd.__version__.split(".")[0])
            if major >= 3 or pd.options.mode.copy_on_write is True:
                opaque.append(pd.core.generic.NDFrame)
        except Exception:
            pass
    return tuple(skip), tuple(opaque), ndarray


def _share_groups(ns, first, second, budget=WALK_BUDGET):
    """Union-find over names whose values reach a common mutable object.

    Returns {name: root}. `first` names are walked before `second` names (the budget may run
    out: names not walked then are on their own). By-value functions are walked through their
    defaults, closures and attributes, never their globals (the namespace itself).
    """
    names = list(first) + [n for n in second if n not in first]
    parent = {n: n for n in names}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb

    skip_ids = {id(ns), id(builtins.__dict__), id(sys.modules), id(globals())}
    for m in list(sys.modules.values()):
        try:
            skip_ids.add(id(m.__dict__))
        except Exception:
            pass
    skip_types, opaque_types, ndarray = _walk_kinds()
    owner = {}
    alive = []  # keep every visited object alive so that ids stay unique
    left = budget
    FunctionType, FrameType = types.FunctionType, types.FrameType
    for name in names:
        if left <= 0:
            break
        stack = [ns[name]]
        while stack and left > 0:
            o = stack.pop()
            t = type(o)
            if t in _ATOMS:
                continue
            i = id(o)
            if i in skip_ids:
                continue
            if t is tuple or t is frozenset:
                left -= 1
                alive.append(o)
                stack.extend(o)
                continue
            o_owner = owner.get(i)
            if o_owner is not None:
                if o_owner != name:
                    union(name, o_owner)
                continue
            if t is object or isinstance(o, skip_types):
                continue
            if t is FunctionType:
                if getattr(o, "__module__", None) != "__main__":
                    continue
            elif getattr(t, "__module__", "").startswith("pandas._libs"):
                continue
            owner[i] = name
            alive.append(o)
            left -= 1
            try:
                if t is FunctionType:
                    stack.extend(o.__defaults__ or ())
                    stack.extend((o.__kwdefaults__ or {}).values())
                    for c in o.__closure__ or ():
                        try:
                            stack.append(c.cell_contents)
                        except ValueError:
                            pass
                    stack.append(o.__dict__)
                elif t is FrameType:
                    if o.f_code.co_flags & _CO_NEWLOCALS:
                        stack.extend(list(o.f_locals.values()))
                elif ndarray is not None and isinstance(o, ndarray):
                    if o.base is not None:
                        stack.append(o.base)
                elif opaque_types and isinstance(o, opaque_types):
                    pass
                else:
                    stack.extend(gc.get_referents(o))
            except Exception:
                pass
    del alive
    return {n: find(n) for n in names}


# ---------------------------------------------------------------------------------------------
# Running a cell


def _register_sources(sources):
    """Put cell sources in linecache (tracebacks, inspect), forgetting the previous ones.

    Another cell's source is only known when the request carries it (`sources`): a source
    remembered from an earlier exec could be stale and show wrong lines.
    """
    for old in list(ST.registered_sources):
        if old not in sources:
            linecache.cache.pop(old, None)
            ST.registered_sources.discard(old)
    for filename, code in sources.items():
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        ST.registered_sources.add(filename)


def _compile_cell(source, filename, suppressed):
    """(body code, last-expression code or None)."""
    tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | _COMPILE_FLAGS, True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not suppressed:
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec", _COMPILE_FLAGS, True)
    last_code = None
    if last is not None:
        last_code = compile(last, filename, "eval", _COMPILE_FLAGS | (body.co_flags & _FUTURE_MASK), True)
    return body, last_code


_IPY_SYNTAX = re.compile(r"^[ \t]*(%%?[A-Za-z_]|![^=\s]|[?]|[\w.]+[?][?]?[ \t]*$)", re.M)


def _ipython_syntax_line(source):
    m = _IPY_SYNTAX.search(source)
    if m is None:
        return None
    return source.count("\n", 0, m.start()) + 1


def _ipython_shell(module):
    """An IPython shell whose namespace is the cell's (for magics and `!cmd`)."""
    if ST.shell is None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        class WorkerShell(InteractiveShell):
            def enable_gui(self, gui=None):
                pass  # no event loop in a worker: `%matplotlib inline` and the like just work

        config = Config()
        config.HistoryManager.enabled = False
        # Not .instance(): libraries probing IPython's get_ipython() keep seeing None.
        ST.shell = WorkerShell(config=config, user_module=module)
    shell = ST.shell
    shell.user_module = module
    shell.user_ns = module.__dict__
    return shell


def _run_code(code, ns):
    value = eval(code, ns)
    if code.co_flags & _CO_COROUTINE:
        if ST.loop is None:
            import asyncio

            ST.loop = asyncio.new_event_loop()
        value = ST.loop.run_until_complete(value)
    return value


_RUNNER_CODES = set()


def _error_info(exc, filename, compile_error=False):
    """(error dict, nbformat error output)."""
    tb = exc.__traceback__
    line = None
    if compile_error and isinstance(exc, SyntaxError):
        if exc.filename == filename:
            line = exc.lineno
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        t = tb
        while t is not None:
            if t.tb_frame.f_code.co_filename == filename:
                line = t.tb_lineno
            t = t.tb_next
        start = tb
        while start is not None and start.tb_frame.f_code.co_filename != filename:
            start = start.tb_next
        if start is None:
            start = tb
            while start is not None and start.tb_frame.f_code in _RUNNER_CODES:
                start = start.tb_next
        try:
            lines = traceback.format_exception(type(exc), exc, start)
        except Exception:  # a pathological exception: keep what can be said
            lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).splitlines()
    ename = type(exc).__name__
    try:
        evalue = str(exc)
    except Exception:
        evalue = "<exception str() failed>"
    err = {"ename": ename, "evalue": evalue, "traceback": text, "line": line}
    out = {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(text)}
    return err, out


def _simple_error(ename, evalue, lines, line=None):
    text = list(lines) + ["%s: %s" % (ename, evalue)]
    err = {"ename": ename, "evalue": evalue, "traceback": text, "line": line}
    out = {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(text)}
    return err, out


def _result(cell, status="ok"):
    return {
        "type": "result",
        "cell": cell,
        "status": status,
        "stdout": "",
        "stderr": "",
        "outputs": [],
        "error": None,
        "values": [],
        "deleted": [],
        "mutated": [],
        "unpicklable": [],
        "duration_s": 0.0,
    }


def _fail(res, err, out):
    res["status"] = "error"
    res["error"] = err
    res["outputs"] = res["outputs"] + [out]
    res["values"], res["deleted"], res["mutated"], res["unpicklable"] = [], [], [], []
    return res, []


def _restore_globals_state():
    """Undo what a cell may have done to the interpreter (streams, fds, builtins, sys.*)."""
    std = list(ST.std)
    for k, (fd, mode) in enumerate(((0, "r"), (1, "w"), (2, "w"))):
        if std[k] is None or getattr(std[k], "closed", False):
            try:  # the user closed an original stream object: give it a working successor
                std[k] = io.TextIOWrapper(
                    io.FileIO(fd, mode, closefd=False),
                    encoding="utf-8",
                    errors="backslashreplace",
                    write_through=True,
                )
            except Exception:
                pass
    ST.std = tuple(std)
    sys.stdin, sys.stdout, sys.stderr = std
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = std
    try:
        os.dup2(ST.devnull_fd, 0)
        os.dup2(ST.err_fd, 1)
        os.dup2(ST.err_fd, 2)
    except OSError as e:
        _diag("restoring fds failed: %r" % e)
    sys.displayhook = ST.displayhook
    sys.excepthook = ST.excepthook
    sys.settrace(ST.trace)
    sys.setprofile(ST.profile)
    if not gc.isenabled():
        gc.enable()
    try:
        sys.setrecursionlimit(ST.recursion_limit)
    except Exception:
        pass
    if not isinstance(sys.path, list):
        sys.path = []
    sys.path[:] = ST.sys_path
    sys.argv = list(ST.sys_argv)
    sys.modules["__main__"] = ST.main_module
    current = builtins.__dict__
    snapshot = ST.builtins_snapshot
    for k in list(current):
        if k not in snapshot:
            del current[k]
    for k, v in snapshot.items():
        if current.get(k, _MISSING) is not v:
            current[k] = v
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except Exception:
        pass


def _handle_exec(req, blobs):
    cell = req.get("cell")
    source = req.get("code") or ""
    filename = req.get("filename") or "<cell %s>" % cell
    writes = req.get("writes")  # None: a barrier cell, every name it leaves bound is returned
    writes = None if writes is None else list(writes)
    candidates = list(req.get("candidates") or [])
    suppressed = bool(req.get("display_suppressed"))
    res = _result(cell)

    cwd = req.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as e:
            return _fail(res, *_simple_error(type(e).__name__, "cannot chdir to %r: %s" % (cwd, e), []))

    module = types.ModuleType("__main__")
    ns = module.__dict__
    for k in list(ns):
        if k != "__name__":
            del ns[k]
    ns["__builtins__"] = builtins

    # Inputs
    input_names = []
    loaded = {}
    unpickler = _make_unpickler(ns)
    for group in req.get("inputs") or []:
        names = list(group.get("names") or [])
        try:
            if group.get("resident") is not None:
                rid = group["resident"]
                values = ST.residents.get(rid)
                if values is None:
                    raise LookupError(
                        "resident values %s (%s) are not held by this worker (pid %d)"
                        % (rid, ", ".join(names), os.getpid())
                    )
            else:
                index = group.get("blob")
                if index not in loaded:
                    if not isinstance(index, int) or not 0 <= index < len(blobs):
                        raise LookupError("input blob %r is not in the frame" % (index,))
                    values = unpickler(io.BytesIO(blobs[index])).load()
                    ns["__builtins__"] = builtins
                    if not isinstance(values, dict):
                        raise TypeError("input blob %d is not a dict of values" % index)
                    loaded[index] = values
                values = loaded[index]
            for name in names:
                if name not in values:
                    raise LookupError("input %r is missing from its group" % name)
                ns[name] = values[name]
                input_names.append(name)
        except BaseException as e:
            head = "nbmemo: could not load the inputs %s of this cell:" % ", ".join(names)
            lines = [head] + "".join(traceback.format_exception_only(type(e), e)).splitlines()
            err = {"ename": type(e).__name__, "evalue": str(e), "traceback": lines, "line": None}
            out = {"output_type": "error", "ename": err["ename"], "evalue": err["evalue"],
                   "traceback": list(lines)}
            return _fail(res, err, out)
    loaded.clear()
    inputs_set = set(input_names)
    captured_only = {k: v for k, v in ns.items() if k not in inputs_set and k not in ("__name__", "__builtins__")}
    bound_before = set(ns)
    trackers = _TrackerIds(filename, source, req.get("inputs") or [], blobs)
    with trackers:
        before = {n: _fingerprint(ns[n]) for n in candidates if n in ns}

    sources = {}
    extra = req.get("sources")
    if isinstance(extra, dict):
        sources.update((str(k), v) for k, v in extra.items() if isinstance(v, str))
    sources[filename] = source
    _register_sources(sources)
    last_code = None
    body_code = None
    cap = _Capture()
    error = None  # (err, out)
    duration = 0.0
    ST.capture = cap
    try:
        cap.start()
        sys.modules["__main__"] = module
        # Compile (inside the capture: SyntaxWarnings belong to the cell)
        try:
            body_code, last_code = _compile_cell(source, filename, suppressed)
        except SyntaxError as e:
            body_code = None
            magic_line = _ipython_syntax_line(source)
            if magic_line is not None and ST.ipython_available:
                try:
                    from IPython.core.inputtransformer2 import TransformerManager

                    transformed = TransformerManager().transform_cell(source)
                    body_code, last_code = _compile_cell(transformed, filename, suppressed)
                    shell = _ipython_shell(module)
                    builtins.get_ipython = lambda: shell
                except SyntaxError as e2:
                    body_code = None
                    error = _error_info(e2, filename, compile_error=True)
                except Exception as e2:
                    body_code = None
                    error = _error_info(e2, filename)
            if body_code is None and error is None:
                if magic_line is not None and not ST.ipython_available:
                    lines = "".join(traceback.format_exception_only(type(e), e)).splitlines()
                    error = _simple_error(
                        "UsageError",
                        "IPython syntax (%%magic, !command) on line %d needs IPython, which %s "
                        "cannot import: install it (pip install ipython)" % (magic_line, sys.executable),
                        lines[:-1],
                        magic_line,
                    )
                else:
                    error = _error_info(e, filename, compile_error=True)
        if error is None:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            except Exception:
                pass
            value = None
            t0 = time.perf_counter()
            try:
                _run_code(body_code, ns)
                if last_code is not None:
                    value = _run_code(last_code, ns)
            except BaseException as e:
                duration = time.perf_counter() - t0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                except Exception:
                    pass
                error = _error_info(e, filename)
            else:
                duration = time.perf_counter() - t0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                except Exception:
                    pass
                if value is not None:
                    try:
                        if _get_method(value, "_ipython_display_") is not None:
                            value._ipython_display_()
                        else:
                            data, md = _format(value)
                            if data:
                                cap.add_output(
                                    {"output_type": "execute_result", "execution_count": None,
                                     "data": data, "metadata": md}
                                )
                    except BaseException as e:
                        error = _error_info(e, filename)
                value = None
        if error is not None:
            cap.add_output(error[1])
        try:
            _show_figures()
        except BaseException:
            _report_format_error()
    finally:
        data = cap.stop()
        ST.capture = None
        _restore_globals_state()

    res["duration_s"] = duration
    res["stdout"] = data["stdout"].decode("utf-8", "replace")
    res["stderr"] = data["stderr"].decode("utf-8", "replace")
    res["outputs"] = cap.build_outputs(data)
    if error is not None:
        res["status"] = "error"
        res["error"] = error[0]
        return res, []

    # Values
    def rebound(n):
        if n not in ns:
            return False
        if n in captured_only and ns[n] is captured_only[n]:
            return False  # only the fallback copy of a captured global, not bound by the cell
        return True

    if writes is None:
        writes = [n for n in ns if not (n.startswith("__") and n.endswith("__"))]
    returned = set(n for n in writes if rebound(n))
    with trackers:
        return _collect_values(res, ns, writes, candidates, returned, before, rebound, inputs_set,
                               bound_before)


def _collect_values(res, ns, writes, candidates, returned, before, rebound, inputs_set,
                    bound_before):
    cp = ST.cloudpickle
    mutated = []
    for n in candidates:
        if n not in ns:
            continue
        if n not in before:
            if rebound(n):
                returned.add(n)
            continue
        after = _fingerprint(ns[n])
        if after is None or before[n] is None or after != before[n]:
            mutated.append(n)
            returned.add(n)
    groups = []
    if returned:
        present_inputs = sorted(n for n in inputs_set if n in ns and n not in returned)
        roots = _share_groups(ns, sorted(returned), present_inputs)
        wanted = set(roots[n] for n in returned)
        by_root = {}
        for n, r in roots.items():
            if r in wanted:
                by_root.setdefault(r, []).append(n)
        groups = sorted(sorted(g) for g in by_root.values())
    values, out_blobs, unpicklable = [], [], []
    for group in groups:
        payload = {n: ns[n] for n in group}
        try:
            blob = cp.dumps(payload, protocol=5)
        except BaseException as e:
            ST.resident_counter += 1
            rid = "r%d" % ST.resident_counter
            ST.residents[rid] = payload
            unpicklable.extend(_unpicklable_entries(payload, rid, e))
            continue
        values.append({"names": group, "blob": len(out_blobs)})
        out_blobs.append(blob)
    res["values"] = values
    res["unpicklable"] = unpicklable
    res["mutated"] = sorted(mutated)
    res["deleted"] = sorted(n for n in set(writes) | inputs_set if n in bound_before and n not in ns)
    return res, out_blobs


_CANNOT_PICKLE = re.compile(r"cannot pickle '([^']+)' object")


def _unpicklable_entries(payload, rid, exc):
    entries = []
    culprits = {}
    for name, value in payload.items():
        try:
            ST.cloudpickle.dumps(value, protocol=5)
        except BaseException as e:
            culprits[name] = e
    for name, value in payload.items():
        e = culprits.get(name)
        if e is not None:
            reason = "%s: %s" % (type(e).__name__, e)
            m = _CANNOT_PICKLE.search(str(e))
            typ = m.group(1) if m else type(value).__qualname__
        else:
            others = sorted(culprits) or sorted(n for n in payload if n != name)
            reason = "shares objects with %s, which cannot be pickled (%s: %s)" % (
                ", ".join(others), type(exc).__name__, exc)
            typ = type(value).__qualname__
        entries.append({"name": name, "type": typ, "resident": rid, "reason": reason})
    return entries


_RUNNER_CODES.update([_run_code.__code__, _handle_exec.__code__])


# ---------------------------------------------------------------------------------------------
# Start-up and main loop


def _ipython_version():
    try:
        import importlib.util

        spec = importlib.util.find_spec("IPython")
    except Exception:
        spec = None
    if spec is None:
        return None
    for loc in spec.submodule_search_locations or []:
        site = os.path.dirname(loc)
        try:
            for entry in os.listdir(site):
                m = re.match(r"(?i)^ipython-([^-]+)\.(dist|egg)-info$", entry)
                if m:
                    return m.group(1)
        except OSError:
            pass
    try:
        import importlib.metadata

        return importlib.metadata.version("ipython")
    except Exception:
        return "unknown"


def _site_dirs():
    dirs = []
    try:
        import site

        candidates = list(getattr(site, "getsitepackages", lambda: [])())
        if getattr(site, "ENABLE_USER_SITE", False):
            candidates.append(site.getusersitepackages())
    except Exception:
        candidates = []
    for d in candidates:
        if d not in dirs and os.path.isdir(d):
            dirs.append(d)
    return dirs


def _hello(cp_version, error=None):
    import sysconfig

    msg = {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": {
            "implementation": sys.implementation.name,
            "version": sys.version.split()[0],
            "platform": sysconfig.get_platform(),
            "cache_tag": sys.implementation.cache_tag,
        },
        "cloudpickle": cp_version,
        "ipython": ST.ipython_version,
        "executable": sys.executable,
        "site_dirs": _site_dirs(),
    }
    if error is not None:
        msg["error"] = error
    return msg


def _setup_fds():
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    ST.devnull_fd = os.open(os.devnull, os.O_RDWR)
    os.set_inheritable(ST.devnull_fd, False)
    ST.err_fd = os.dup(2)
    os.dup2(ST.devnull_fd, 0)
    os.dup2(ST.err_fd, 1)  # stray writes to fd 1 between cells go to stderr, never the protocol
    ST.chan = _Channel(proto_in, proto_out)


def _setup_process():
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        fflush = libc.fflush
        fflush.argtypes = [ctypes.c_void_p]
        fflush.restype = ctypes.c_int
        ST.fflush = fflush
    except Exception:
        ST.fflush = None
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not sys.path or sys.path[0] != "":
        if sys.argv and sys.argv[0] not in ("-c", "") and sys.path:
            sys.path[0] = ""  # script mode: the notebook's folder, not the runner's, as with -c
        else:
            sys.path.insert(0, "")
    _install_post_import()
    builtins.display = _display
    ST.builtins_snapshot = dict(builtins.__dict__)
    ST.sys_path = list(sys.path)
    ST.sys_argv = list(sys.argv)
    ST.recursion_limit = sys.getrecursionlimit()
    ST.main_module = sys.modules.get("__main__")
    ST.trace = sys.gettrace()
    ST.profile = sys.getprofile()
    ST.displayhook = sys.displayhook
    ST.excepthook = sys.excepthook
    ST.std = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except Exception:
        pass


def main():
    _setup_fds()
    ST.ipython_version = _ipython_version()
    ST.ipython_available = ST.ipython_version is not None
    try:
        import cloudpickle
    except BaseException as e:
        ST.chan.write_frame(
            _hello(None, "cannot import cloudpickle in %s (%s: %s); install it with "
                   "`%s -m pip install cloudpickle`" % (sys.executable, type(e).__name__, e,
                                                         sys.executable))
        )
        return 3
    ST.cloudpickle = cloudpickle
    ST.chan.write_frame(_hello(getattr(cloudpickle, "__version__", "unknown")))
    _setup_process()
    while True:
        try:
            frame = ST.chan.read_frame()
        except EOFError as e:
            _diag(str(e))
            return 1
        except ValueError as e:
            _diag("malformed frame: %r" % e)
            return 2
        if frame is None:
            return 0
        header, blobs = frame
        kind = header.get("type")
        if kind == "exec":
            try:
                res, out_blobs = _handle_exec(header, blobs)
            except BaseException as e:  # a runner bug: still answer
                ST.capture = None
                try:
                    _restore_globals_state()
                except BaseException:
                    pass
                res = _result(header.get("cell"), "error")
                text = ["nbmemo runner internal error:"] + "".join(
                    traceback.format_exception(type(e), e, e.__traceback__)).splitlines()
                res["error"] = {"ename": type(e).__name__, "evalue": str(e), "traceback": text,
                                "line": None}
                res["outputs"] = [{"output_type": "error", "ename": type(e).__name__,
                                   "evalue": str(e), "traceback": list(text)}]
                out_blobs = []
            del blobs, frame, header
            try:
                ST.chan.write_frame(res, out_blobs)
            except (BrokenPipeError, OSError):
                return 1
            except (TypeError, ValueError) as e:  # not JSON-serialisable: a runner bug
                _diag("cannot encode result: %r" % e)
                fallback = _result(res.get("cell"), "error")
                fallback["error"] = {"ename": "RunnerError", "evalue": str(e), "traceback": [str(e)],
                                     "line": None}
                ST.chan.write_frame(fallback)
        elif kind == "drop":
            for rid in header.get("resident") or []:
                ST.residents.pop(rid, None)
        elif kind == "shutdown":
            return 0
        else:
            _diag("unknown request type %r ignored" % (kind,))


if __name__ == "__main__":
    _code = main()
    for _s in (sys.stdout, sys.stderr):
        try:
            _s.flush()
        except Exception:
            pass
    os._exit(_code or 0)
