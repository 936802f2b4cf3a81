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
originals), fds 0-2, builtins, sys.argv, the display/except hooks, trace/profile functions, the
recursion limit, gc and SIGINT (ignored between cells, KeyboardInterrupt during a cell).
Library state (random generators, rcParams, pandas options, warnings filters, numpy print
options, the working directory, sys.path, os.environ) is the business of the state probes
(`PROBES`): before each cell every probe whose module is imported is put in the state the
request gives, else its default, so nothing a previous cell did on this worker leaks; after
the cell the probes that changed are returned as values.

Values. Returned names are grouped by shared objects, found by walking object graphs from the
values (gc.get_referents, at most WALK_BUDGET objects per exec; immutable atoms, classes,
modules, functions of other modules, enum members, numpy dtypes, pandas indexes are ignored;
numpy views reach their `.base`; by-value functions are walked through their defaults,
closures and attributes, never their globals). A group that cannot be pickled stays in the
worker as a resident group. Classes defined by a cell get deterministic cloudpickle tracker
ids, so equal code gives equal bytes in every worker. A numpy view of an array pickled in the
same group is pickled as a view of it (anchor, byte offset, shape, strides, dtype), so it comes
back as a view, not a copy (`_dumps_group`).
"""

import _ast as ast  # the C module: `import ast` costs milliseconds at start-up
import _weakref  # the C module, likewise
import binascii
import builtins
import codecs
import functools
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
    # State probes
    probes_ready = False  # defaults of the stdlib probes taken: import windows are on
    probe_default = {}  # probe name -> (default state, blob)
    probe_base = {}  # probe name -> what its differences are taken from (rcParams, options)
    probe_off = set()  # probes that failed to set up in this worker
    probe_now = {}  # probe name -> (state, blob) the worker is known to be in
    probe_start = None  # during a cell: probe name -> (state, blob or None) it started with
    probe_pending = {}  # during a cell: input (state, blob) of probes whose module is not imported
    import_depth = 0  # import windows open
    warn_base = []  # @warnings.filters base filters
    env_base_raw = {}  # @os.environ base, as os.environ._data holds it
    rc_quick = None  # @matplotlib.rcParams: a dict equal to rcParams at the base
    rc_list_keys = ()  # @matplotlib.rcParams: the keys whose values are lists
    np_raw_ok = None  # @numpy.random: whether the raw MT19937 words read as expected
    probe_tokens = {}  # during a cell: probe name -> quick token of its start state
    pd_quick = None  # @pandas.options: pandas' option store at the defaults
    pd_slots = None  # @pandas.options: (store, n options, ((dict, key) of each option))
    cwd_base = None  # @cwd: the request's cwd (real path)
    start_cwd = None
    files = None  # during a cell: its _FileTrace, when the request names a project root
    memory_limit = None  # NBMEMO_MEMORY_LIMIT in bytes, when set
    copy_parents = []  # stand-ins the loaded pandas copies of this cell refer to
    # The namespace of the cell just run, and its request's blobs: let go of only once the
    # result is written, so that freeing the cell's values (a million floats take a
    # millisecond) overlaps with the parent reading the result instead of delaying it.
    spent = None


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
    """Wraps a loader: runs the post-import hooks of the module, and when the import is an
    *import window* (the outermost import in progress), folds the state changes it made into
    the probes' bases (see `_window_open`)."""

    def __init__(self, loader, fullname, window):
        self._loader = loader
        self._fullname = fullname
        self._window = window

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
        snaps = _window_open() if self._window else None
        try:
            self._loader.exec_module(module)
        finally:
            if self._window:
                _window_close(snaps)
        name = self._fullname
        hook = _POST_IMPORT.get(name)
        if hook is not None:
            try:
                hook(module)
            except Exception as e:
                _diag("patching %s failed: %r" % (name, e))
        if name in _PROBE_MODULES:
            try:
                _probe_module_imported(name)
            except Exception as e:
                _diag("state probes of %s failed: %r" % (name, e))


class _PostImportFinder:
    """Wraps the loader of some imports (wherever the import comes from): the modules with a
    post-import hook (patches, state probes) and, once the probes are set up, every outermost
    import made by an `import` statement (an import window)."""

    def __init__(self):
        self._busy = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self._busy:
            return None
        hooked = fullname in _POST_IMPORT or fullname in _PROBE_MODULES
        window = ST.probes_ready and ST.import_depth == 0
        if not hooked:
            if not window:
                return None
            # Only real imports (not importlib.util.find_spec(), whose caller would see our
            # loader): the import system calls finders from _find_spec(), called by
            # _find_and_load_unlocked().
            try:
                caller = sys._getframe(2).f_code.co_name
            except Exception:
                caller = None
            if caller != "_find_and_load_unlocked":
                return None
        self._busy.add(fullname)
        spec = None
        try:
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    if hasattr(finder, "find_module"):
                        return None  # a legacy finder: leave the search to the import system
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        except Exception:
            return None  # let the import system try again and report it
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        if not hooked and (isinstance(spec.loader, type) or not _is_library(spec)):
            return None  # builtin and frozen modules; the notebook's own modules (their
            # import-time changes are the importing cell's, as if it ran their code)
        spec.loader = _PatchingLoader(spec.loader, fullname, window and _is_library(spec))
        return spec

    def invalidate_caches(self):
        pass


_LIBRARY_DIRS = None


def _is_library(spec):
    """Whether a module comes from the interpreter's installed code (standard library, site
    directories): its import-time changes of library state are the environment's."""
    global _LIBRARY_DIRS
    if _LIBRARY_DIRS is None:
        dirs = set()
        try:
            import sysconfig

            for key in ("stdlib", "platstdlib", "purelib", "platlib"):
                path = sysconfig.get_path(key)
                if path:
                    dirs.add(path)
        except Exception:
            pass
        dirs.update(_site_dirs())
        _LIBRARY_DIRS = tuple(sorted(set(
            os.path.join(os.path.realpath(d), "") for d in dirs if os.path.isdir(d))))
    locations = spec.submodule_search_locations
    origin = spec.origin if not locations else next(iter(locations), None)
    if not origin or not isinstance(origin, str):
        return False
    origin = os.path.realpath(origin)
    return any(origin.startswith(d) for d in _LIBRARY_DIRS)


def _install_post_import():
    if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
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


def _make_cell_function(ns, make, code, globals, name, argdefs, closure):
    if globals.get("__name__", "__main__") != "__main__":
        return make(code, globals, name, argdefs, closure)
    return types.FunctionType(code, ns, name, argdefs, closure)


def _set_cell_function_state(ns, setstate, obj, state):
    if obj.__globals__ is not ns:
        return setstate(obj, state)
    state, slotstate = state
    slotstate = dict(slotstate)
    captured = slotstate.pop("__globals__", None) or {}
    for k, v in captured.items():
        ns.setdefault(k, v)
    slotstate["__globals__"] = {}
    setstate(obj, (state, slotstate))
    ns["__builtins__"] = builtins


class _CellUnpickler(pickle.Unpickler):
    """An Unpickler whose by-value functions take the cell namespace `ns` as their globals.

    cloudpickle rebuilds a by-value function with `_make_function(code, base_globals, ...)`
    and fills it with `_function_setstate`, which updates its globals with the globals it
    captured. For functions of the notebook (`__name__ == "__main__"` in the globals they came
    from) the hooks below use the cell namespace instead and only `setdefault` the captured
    values into it: the cell's explicit inputs, inserted after each blob is loaded, win.

    One class for the worker, the namespace held by the instance and the hooks handed out as
    partials of it: a class made per cell, or a hook closing over the unpickler (its memo keeps
    what `find_class` returned), would be a reference cycle holding the namespace, and every
    value of the cell, until a full garbage collection.
    """

    def __init__(self, file, ns):
        super().__init__(file)
        self.ns = ns

    def find_class(self, module, name):
        obj = super().find_class(module, name)
        make, setstate = _cp_attr("_make_function"), _cp_attr("_function_setstate")
        if make is not None and obj is make:
            return functools.partial(_make_cell_function, self.ns, make)
        if setstate is not None and obj is setstate:
            return functools.partial(_set_cell_function_state, self.ns, setstate)
        return obj


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


# ---------------------------------------------------------------------------------------------
# Value groups: numpy views of an array of the same group stay views


def _array_extent(a):
    """(first element address, lowest address, one past the highest address) of an ndarray."""
    ptr = a.__array_interface__["data"][0]
    lo = hi = ptr
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += s * (n - 1)
        else:
            hi += s * (n - 1)
    return ptr, lo, hi + a.itemsize


def _view_plan(arrays):
    """{id(view): (anchor, byte offset)} for the arrays a group pickle met, in order.

    Arrays whose memory overlaps come from one allocation: in each such cluster the anchor is
    the largest C-contiguous array (the first met among equals), pickled as usual (numpy's
    reduce keeps a C-contiguous layout, so byte offsets into it stay valid after loading); every
    other array of the cluster that lies within the anchor's bytes is pickled as a view of it.
    Only the values' geometry decides, so equal states give equal bytes in every worker.
    """
    recs = []
    for i, a in enumerate(arrays):
        if a.size == 0 or a.dtype.hasobject:
            continue
        ptr, lo, hi = _array_extent(a)
        recs.append((lo, hi, i, ptr, a))
    recs.sort(key=lambda r: (r[0], r[2]))
    clusters, end = [], None
    for r in recs:
        if end is None or r[0] >= end:
            clusters.append([])
            end = r[1]
        clusters[-1].append(r)
        end = max(end, r[1])
    plan = {}
    for c in clusters:
        if len(c) < 2:
            continue
        anchors = [r for r in c if r[4].flags.c_contiguous]
        if not anchors:
            continue
        alo, ahi, _, aptr, anchor = min(anchors, key=lambda r: (r[0] - r[1], r[2]))
        for lo, hi, _, ptr, a in c:
            if a is anchor or lo < alo or hi > ahi:
                continue
            if a.flags.writeable and not anchor.flags.writeable:
                continue  # the loaded anchor would be read-only: keep a writeable copy
            plan[id(a)] = (anchor, ptr - aptr)
    return plan


def _dumps_group(payload):
    """The blob of a value group: cloudpickle (protocol 5) of `payload`.

    When numpy is imported, the pickle notes the ndarrays it meets; if some of them share
    memory (a view and its base, both reachable from the group), it pickles again with those
    views as `numpy.ndarray(shape, dtype, anchor, offset, strides)` (through `as_strided` for a
    read-only view), so that they come back as views of the loaded anchor, not as copies.
    """
    cp = ST.cloudpickle
    np = sys.modules.get("numpy")
    ndarray = getattr(np, "ndarray", None) if np is not None else None
    if not isinstance(ndarray, type) or not hasattr(cp.Pickler, "reducer_override"):
        return cp.dumps(payload, protocol=5)
    seen = []  # also keeps every array met alive: no address is reused while planning

    class Observer(cp.Pickler):
        def reducer_override(self, obj):
            if type(obj) is ndarray:
                seen.append(obj)
            return super().reducer_override(obj)

    buf = io.BytesIO()
    Observer(buf, protocol=5).dump(payload)
    if len(seen) < 2:
        return buf.getvalue()
    plan = _view_plan(seen)
    if not plan:
        return buf.getvalue()
    as_strided = np.lib.stride_tricks.as_strided
    inner = {}  # id -> same-geometry stand-ins for read-only views (kept alive here)

    class ViewPickler(cp.Pickler):
        def reducer_override(self, obj):
            if type(obj) is ndarray:
                entry = plan.get(id(obj))
                if entry is not None:
                    anchor, offset = entry
                    if obj.flags.writeable or id(obj) in inner:
                        return ndarray, (obj.shape, obj.dtype, anchor, offset, obj.strides)
                    stand_in = obj.view()
                    inner[id(stand_in)] = stand_in
                    plan[id(stand_in)] = entry
                    return as_strided, (stand_in, None, None, False, False)
            return super().reducer_override(obj)

    buf = io.BytesIO()
    ViewPickler(buf, protocol=5).dump(payload)
    return buf.getvalue()


# pandas marks a frame taken from another (`sub = df[df.x > 0]`) with a weak reference to its
# parent, `_is_copy`, and warns (SettingWithCopyWarning) when the copy is then written to.
# Pickling drops the mark; the group keeps the parent's shape under this key, and loading puts
# a stand-in parent back (pandas only checks that it is alive and its shape).
_COPY_OF = "\x00nbmemo.copy_of"


class _CopyParent:
    """What a loaded copy's `_is_copy` refers to: the shape of the frame it was taken from."""

    def __init__(self, shape):
        self.shape = shape


def _copy_links(payload):
    pandas = sys.modules.get("pandas")
    ndframe = getattr(getattr(getattr(pandas, "core", None), "generic", None), "NDFrame", None)
    if not isinstance(ndframe, type):
        return []
    links = []
    for name, value in payload.items():
        if not isinstance(value, ndframe):
            continue
        try:
            ref = value._is_copy
            parent = ref() if callable(ref) else None
            shape = tuple(int(n) for n in parent.shape) if parent is not None else None
        except Exception:
            continue
        if shape is not None:
            links.append([name, list(shape)])
    return sorted(links)


def _relink_copies(values):
    links = values.pop(_COPY_OF, None) if isinstance(values, dict) else None
    if not links:
        return
    import weakref

    for name, shape in links:
        frame = values.get(name)
        if frame is None or getattr(frame, "_is_copy", True) is not None:
            continue
        parent = _CopyParent(tuple(shape))
        ST.copy_parents.append(parent)
        try:
            frame._is_copy = weakref.ref(parent)
        except Exception:
            pass


_TRUSTED_LIBRARIES = ("numpy", "pandas")


def _unchecked(spec, ns):
    """Candidates the cell only uses softly (read-only methods of pandas and numpy objects,
    arguments of numpy and pandas functions): not fingerprinted when the value is a numpy or
    pandas object and every root of the dotted callees it went through is a numpy or pandas
    module. Anything else is checked as any candidate."""
    skip = set()
    if not isinstance(spec, dict):
        return skip
    for name, roots in spec.items():
        if name not in ns:
            continue
        library = (getattr(type(ns[name]), "__module__", None) or "").partition(".")[0]
        if library not in _TRUSTED_LIBRARIES:
            continue
        ok = True
        for root in roots or ():
            module = ns.get(root)
            if not isinstance(module, types.ModuleType) or \
                    (getattr(module, "__name__", "") or "").partition(".")[0] not in _TRUSTED_LIBRARIES:
                ok = False
                break
        if ok:
            skip.add(name)
    return skip


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

    Never shared: classes, modules, weak references (Python hands out one weakref per referent:
    a pandas frame's `_flags` and a copy's `_is_copy` hold the same one, which is no aliasing;
    the walk never follows a weakref to its referent), plain `object()` sentinels, library enum
    members, numpy dtypes, pandas indexes and dtypes (immutable, so sharing them is no
    aliasing), pandas' compiled internals. Not walked into: pandas DataFrames/Series under copy-on-write (they
    never alias each other's data, only their identity matters).
    """
    skip = [type, types.ModuleType, _weakref.ReferenceType, _weakref.ProxyType,
            _weakref.CallableProxyType]
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


def _only_atoms(seq):
    """Whether a (long, non-empty) sequence holds numbers, strings and other atoms only. A data
    column usually holds one type: counting it runs faster in C than building a set of types."""
    first = type(seq[0])
    if first in _ATOMS and list(map(type, seq)).count(first) == len(seq):
        return True
    return set(map(type, seq)) <= _ATOMS


def _share_groups(ns, first, second, budget=WALK_BUDGET, known_columns=None, columns=None):
    """Union-find over names whose values reach a common mutable object.

    Returns {name: root}. `first` names are walked before `second` names (the budget may run
    out: names not walked then are on their own). By-value functions are walked through their
    defaults, closures and attributes, never their globals (the namespace itself).

    `known_columns` ({id: object}) are long lists and tuples already known to hold atoms only
    (inputs whose producer found so, unchanged since): their elements are not checked again.
    The `first` names whose value is such a column are added to `columns`.
    """
    known_columns = known_columns or {}
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
        top = ns[name]
        stack = [top]
        while stack and left > 0:
            o = stack.pop()
            t = type(o)
            if t in _ATOMS:
                continue
            i = id(o)
            if i in skip_ids:
                continue
            if (t is tuple or t is list) and len(o) > 64 and (
                    known_columns.get(i) is o or _only_atoms(o)):
                # A long sequence of numbers or strings (a column of data) holds nothing
                # mutable: checking the element types runs in C, walking them would not. The
                # list itself can still be shared, so it is owned like any object.
                if o is top and columns is not None and name in first:
                    columns.add(name)
                if t is list:
                    o_owner = owner.get(i)
                    if o_owner is not None:
                        if o_owner != name:
                            union(name, o_owner)
                        continue
                    owner[i] = name
                alive.append(o)
                left -= 1
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
            else:
                module = getattr(t, "__module__", None)  # a descriptor on some Cython types
                if isinstance(module, str) and module.startswith("pandas._libs"):
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
# State probes (PROTOCOL.md, "State probes"): library state that travels like a variable
#
# A probe's *state* is what its `capture()` returns: picklable, canonical (equal state, equal
# pickle bytes in every worker: sorted keys, no compiled regexes or other objects whose bytes
# depend on the process). The *blob* of a state is its value group as the worker returns it,
# `{name: state}` pickled without memo (fast mode: the bytes depend on values only, not on which
# equal strings happen to be one object), and doubles as its fingerprint.
#
# Most probes hold the difference from a *base*: the state the worker had when the module was
# imported (rcParams, numpy print options), pandas' registered defaults, the worker's start-up
# environment, sys.path and warnings filters. The default state of such a probe is "no
# difference", the same bytes in every worker and every run, and a state carries only what the
# notebook changed (never the whole environment, never an absolute site-packages path). Changes
# a library makes while it is imported (scikit-learn sets KMP_* variables, numpy and scipy add
# warnings filters) are part of the base, not of the cell that happened to import it first:
# see `_window_open`. The random generators have no base: their state is the full state, their
# default the state at import (worker start for `random`).


class _Probe:
    """One kind of library state. `capture()` -> state; `restore(state)` puts it in place.

    `module`: the module that must be imported for the state to exist (None: always there).
    `init(pristine)`: called once, when the module is first seen, sets the base up and returns
    the default state (None: the default is `capture()`); `pristine` is false when the module is
    first seen at the end of a cell (the cell may have changed the state already).
    `snap()` / `fold(before, after)`: a cheap raw snapshot taken around each import window, and
    the function making the window's changes part of the base.
    `quick(state)`: a token of the live state, cheaper than a capture, taken when a cell starts
    in `state` and again when it ends: equal tokens mean the state did not change (None: no
    token for that state).
    """

    __slots__ = ("name", "module", "capture", "restore", "init", "snap", "fold", "quick")

    def __init__(self, name, module, capture, restore, init=None, snap=None, fold=None,
                 quick=None):
        self.name = name
        self.module = module
        self.capture = capture
        self.restore = restore
        self.init = init
        self.snap = snap
        self.fold = fold
        self.quick = quick


def _same(a, b):
    """Equal values of the same type (True != 1 here); False when == cannot tell."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


def _sorted_dict(d):
    return {k: d[k] for k in sorted(d)}


# --- @numpy.random: the legacy global RandomState (np.random.seed / rand / shuffle, and every
# library drawing with random_state=None). Its full state: get_state()'s tuple with the key as
# little-endian bytes, ("MT19937", key, pos, has_gauss, cached_gaussian), which set_state takes
# back (numpy 1.x and 2.x) once the key is an array again. Bytes, not an array: the pickle of an
# ndarray names numpy's private modules, which differ between numpy 1.x and 2.x. When the global
# generator is not an MT19937 (np.random.set_bit_generator), numpy's own dict
# (get_state(legacy=False)). New-style generators (np.random.default_rng()) are ordinary values.


def _np_random_capture():
    rnd = sys.modules["numpy.random"]
    try:
        name, key, pos, has_gauss, gauss = rnd.get_state()
    except ValueError:
        return rnd.get_state(legacy=False)
    return (str(name), key.astype("<u4").tobytes(), int(pos), int(has_gauss), float(gauss))


def _np_random_quick(state):
    """The generator's raw words and position (numpy's ctypes view of the MT19937 state, 2 us
    instead of 50 for get_state). Only when no cached gaussian waits (has_gauss 0): using that
    one up changes the state without touching the words."""
    if ST.np_raw_ok is False or type(state) is not tuple or len(state) != 5 or state[3]:
        return None
    import ctypes

    rnd = sys.modules["numpy.random"]
    bg = rnd.mtrand._rand._bit_generator
    if type(bg).__name__ != "MT19937":
        return None
    raw = ctypes.string_at(bg.ctypes.state_address, 624 * 4 + 4)
    if ST.np_raw_ok is None:  # check once that the struct is what we think: key[624], pos
        _, key, pos, _, _ = rnd.get_state()
        ST.np_raw_ok = (raw[:2496] == key.tobytes()
                        and int.from_bytes(raw[2496:], sys.byteorder, signed=True) == pos)
        if not ST.np_raw_ok:
            return None
    return raw


def _np_random_restore(state):
    if type(state) is tuple and len(state) == 5 and type(state[1]) is bytes:
        np = sys.modules["numpy"]
        name, key, pos, has_gauss, gauss = state
        state = (name, np.frombuffer(key, dtype="<u4").astype(np.uint32), pos, has_gauss, gauss)
    sys.modules["numpy.random"].set_state(state)


# --- @random: the `random` module's generator (random.getstate / setstate).


def _random_capture():
    return sys.modules["random"].getstate()


def _random_restore(state):
    sys.modules["random"].setstate(state)


# --- @matplotlib.rcParams: the keys that differ from rcParams right after `import matplotlib`
# (with the worker's Agg backend). `backend` is not part of it: the worker's backend stays Agg.
# Cyclers travel as their by-key lists (a Cycler pickles its keys as a set).

_CYCLER_TAG = "nbmemo:cycler"
_RC_SKIP = frozenset(["backend"])


def _rc_encode(v):
    cyc = sys.modules.get("cycler")
    if cyc is not None and isinstance(v, getattr(cyc, "Cycler", ())):
        return (_CYCLER_TAG, tuple(sorted((k, tuple(vs)) for k, vs in v.by_key().items())))
    return v


def _rc_decode(v):
    if type(v) is tuple and len(v) == 2 and v[0] == _CYCLER_TAG:
        from cycler import cycler

        return cycler(**{k: list(vs) for k, vs in v[1]})
    return v


def _rc_init(pristine):
    mpl = sys.modules["matplotlib"]
    source = mpl.rcParams if pristine else getattr(mpl, "rcParamsDefault", mpl.rcParams)
    import copy

    ST.probe_base["@matplotlib.rcParams"] = base = {
        k: copy.deepcopy(v) for k, v in dict.items(source) if k not in _RC_SKIP
    }
    ST.rc_quick = None
    ST.rc_list_keys = tuple(k for k, v in base.items() if type(v) is list)
    return ()


def _rc_capture():
    rc = sys.modules["matplotlib"].rcParams
    quick = ST.rc_quick  # rcParams at the base (lists copied), as a dict compared in C
    if quick is not None:
        try:
            if dict.__eq__(rc, quick) is True:
                return ()
        except Exception:
            pass
    base = ST.probe_base["@matplotlib.rcParams"]
    diff = [(k, _rc_encode(v)) for k, v in dict.items(rc)
            if k not in _RC_SKIP and not _same(v, base.get(k, _MISSING))]
    if not diff:
        ST.rc_quick = {k: (list(v) if type(v) is list else v) for k, v in dict.items(rc)}
    diff.sort(key=lambda kv: kv[0])
    return tuple(diff)


def _rc_token(rc):
    """Equal while rcParams do not change, compared in C: the same keys and value objects
    (identity first), and the list values' items (`rcParams['font.sans-serif'].insert(0, ...)`
    changes a list in place). Not dict.copy(rc): that goes through RcParams.__getitem__."""
    lists = tuple(tuple(dict.get(rc, k, ())) for k in ST.rc_list_keys)
    return tuple(dict.keys(rc)), tuple(dict.values(rc)), lists


def _rc_quick(state):
    if state == ():
        return None  # the default: _rc_capture compares with ST.rc_quick already
    return _rc_token(sys.modules["matplotlib"].rcParams)


def _rc_restore(state):
    import copy

    rc = sys.modules["matplotlib"].rcParams
    base = ST.probe_base["@matplotlib.rcParams"]
    want = dict(base)
    want.update((k, _rc_decode(v)) for k, v in state if k in base)
    for k, v in want.items():
        if not _same(dict.get(rc, k, _MISSING), v):
            dict.__setitem__(rc, k, copy.deepcopy(v))  # values were validated when captured


# --- @pandas.options: the options that differ from their registered defaults, read and set
# through pandas' option registry (validators and callbacks run, deprecation warnings do not).


def _pd_config():
    return sys.modules["pandas._config.config"]


def _pd_values():
    """{option: value} for every registered option, from the registry's value store."""
    cfg = _pd_config()
    registered = cfg._registered_options
    out = {}
    stack = [("", cfg._global_config)]
    while stack:
        prefix, level = stack.pop()
        for k, v in level.items():
            key = prefix + k
            if key in registered:
                out[key] = v
            elif type(v) is dict:
                stack.append((key + ".", v))
    return out


def _pd_default(key):
    base = ST.probe_base["@pandas.options"]
    if key in base:
        return base[key]
    opt = _pd_config()._registered_options.get(key)  # registered after pandas' import
    return opt.defval if opt is not None else _MISSING


def _pd_init(pristine):
    ST.probe_base["@pandas.options"] = {
        k: o.defval for k, o in list(_pd_config()._registered_options.items())
    }
    ST.pd_quick = None
    return ()


def _pd_capture():
    cfg = _pd_config()
    quick = ST.pd_quick  # pandas' option store as it is at the defaults (nested dicts)
    if quick is not None:
        try:
            if cfg._global_config == quick:
                return ()
        except Exception:
            pass
    diff = [(k, _sorted_dict(v) if type(v) is dict else v)
            for k, v in _pd_values().items() if not _same(v, _pd_default(k))]
    if not diff:
        ST.pd_quick = _nested_copy(cfg._global_config)
    diff.sort(key=lambda kv: kv[0])
    return tuple(diff)


def _nested_copy(d):
    return {k: (_nested_copy(v) if type(v) is dict else v) for k, v in d.items()}


def _pd_quick(state):
    """The option values, read through (container dict, key) slots found once."""
    if state == ():
        return None  # the default: _pd_capture compares with ST.pd_quick already
    cfg = _pd_config()
    registered = cfg._registered_options
    slots = ST.pd_slots
    if slots is None or slots[0] is not cfg._global_config or slots[1] != len(registered):
        ST.pd_slots = slots = (cfg._global_config, len(registered),
                               tuple(cfg._get_root(k) for k in list(registered)))
    return slots[1], tuple(level[leaf] for level, leaf in slots[2])


def _pd_restore(state):
    import warnings

    cfg = _pd_config()
    setter = getattr(cfg, "_set_option", None)
    wanted = dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, live in _pd_values().items():
            want = wanted[key] if key in wanted else _pd_default(key)
            if want is _MISSING or _same(live, want):
                continue
            try:
                try:
                    setter(key, want, silent=True)
                except TypeError:  # no such private setter (any more)
                    sys.modules["pandas"].set_option(key, want)
            except Exception as e:
                _diag("cannot set pandas option %s: %r" % (key, e))


# --- @numpy.printoptions: the print options that differ from numpy's at import.


def _np_print_init(pristine):
    ST.probe_base["@numpy.printoptions"] = dict(sys.modules["numpy"].get_printoptions())
    return ()


def _np_print_capture():
    base = ST.probe_base["@numpy.printoptions"]
    live = sys.modules["numpy"].get_printoptions()
    if live == base:
        return ()
    diff = [(k, _sorted_dict(v) if type(v) is dict else v)
            for k, v in live.items() if not _same(v, base.get(k, _MISSING))]
    diff.sort(key=lambda kv: kv[0])
    return tuple(diff)


def _np_print_restore(state):
    np = sys.modules["numpy"]
    base = ST.probe_base["@numpy.printoptions"]
    want = dict(base)
    want.update((k, v) for k, v in state if k in base)
    live = np.get_printoptions()
    if all(_same(live.get(k, _MISSING), v) for k, v in want.items()):
        return
    np.set_printoptions(**want)


# --- @warnings.filters: `warnings.defaultaction` and the filters the notebook added. The base
# is the filters at worker start plus those libraries add while imported. A filter is
# (action, message, category, module, lineno); message and module patterns travel as strings
# (rebuilt as `warnings.filterwarnings` compiles them), categories as "module:qualname".
# State: (defaultaction, filters before the last base filter, filters after it, whether the
# base filters are there at all: `warnings.resetwarnings()` removes them).

_MSG_FLAGS = re.compile("", re.I).flags
_MOD_FLAGS = re.compile("").flags
_PATTERN = type(re.compile(""))


def _warn_pattern_encode(p, flags):
    if p is None:
        return None
    if isinstance(p, str):  # the interpreter's own filters match the module name exactly
        return ("str", p)
    if isinstance(p, _PATTERN):
        if p.flags == flags and isinstance(p.pattern, str):
            return p.pattern
        return ("re", p.pattern, p.flags)
    return p  # some object with .match(): pickled as it is


def _warn_pattern_decode(p, flags):
    if p is None:
        return None
    if isinstance(p, str):
        return re.compile(p, flags)
    if type(p) is tuple and len(p) == 2 and p[0] == "str":
        return p[1]
    if type(p) is tuple and len(p) == 3 and p[0] == "re":
        return re.compile(p[1], p[2])
    return p


def _qualified(obj):
    """'module:qualname' when that name finds obj again, else None."""
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if not mod or not qual or mod == "__main__" or "<" in qual:
        return None
    found = sys.modules.get(mod)
    for part in qual.split("."):
        found = getattr(found, part, None)
    return "%s:%s" % (mod, qual) if found is obj else None


def _resolve(name):
    import importlib

    mod, _, qual = name.partition(":")
    obj = importlib.import_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _warn_encode(f):
    action, msg, cat, mod, lineno = f
    return (action, _warn_pattern_encode(msg, _MSG_FLAGS), _qualified(cat) or cat,
            _warn_pattern_encode(mod, _MOD_FLAGS), lineno)


def _warn_decode(f):
    action, msg, cat, mod, lineno = f
    if isinstance(cat, str):
        cat = _resolve(cat)
    return (action, _warn_pattern_decode(msg, _MSG_FLAGS), cat,
            _warn_pattern_decode(mod, _MOD_FLAGS), lineno)


def _warn_init(pristine):
    import warnings

    ST.warn_base = list(warnings.filters)
    return (warnings.defaultaction, (), (), True)


def _warn_capture():
    import warnings

    live = list(warnings.filters)
    action = warnings.defaultaction
    base = ST.warn_base
    if live == base:
        return (action, (), (), True)
    is_base = [f in base for f in live]
    last = max((i for i, b in enumerate(is_base) if b), default=-1)
    front = tuple(_warn_encode(f) for i, f in enumerate(live)
                  if not is_base[i] and (last < 0 or i < last))
    back = tuple(_warn_encode(f) for i, f in enumerate(live) if not is_base[i] and 0 <= last < i)
    return (action, front, back, last >= 0)


def _warn_quick(state):
    import warnings

    return tuple(warnings.filters), warnings.defaultaction


def _warn_restore(state):
    import warnings

    action, front, back, with_base = state
    filters = [_warn_decode(f) for f in front]
    if with_base:
        filters.extend(ST.warn_base)
    filters.extend(_warn_decode(f) for f in back)
    if isinstance(warnings.filters, list):
        warnings.filters[:] = filters
    else:
        warnings.filters = filters
    warnings.defaultaction = action
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()  # forget the warnings already shown under the old filters


def _warn_snap():
    import warnings

    return list(warnings.filters)


def _warn_fold(before, after):
    """Filters the import added (or removed) become (or stop being) base filters."""
    if before == after:
        return False
    base = ST.warn_base
    added = [f for f in after if f not in before and f not in base]
    removed = [f for f in base if f in before and f not in after]
    if not added and not removed:
        return False
    keep = [f for f in base if f not in removed]
    ST.warn_base = ([f for f in after if f in added or f in keep]
                    + [f for f in keep if f not in after])
    return True


# --- @cwd: the working directory, relative to the request's `cwd` (so "sub" after
# os.chdir("sub"), "." by default), absolute only when no relative path leads there. A
# directory that vanished: the cell runs in the request's cwd, and nothing is reported.


def _cwd_capture():
    here = os.getcwd()
    if here == ST.cwd_base:
        return "."
    try:
        rel = os.path.relpath(here, ST.cwd_base)
    except ValueError:  # another drive
        return here
    return rel


def _cwd_restore(state):
    try:
        os.chdir(os.path.join(ST.cwd_base, state))
    except OSError as e:
        _diag("working directory %r is gone (%s); staying in %s" % (state, e, ST.cwd_base))
        os.chdir(ST.cwd_base)


# --- @sys.path: entries added before / after the start-up sys.path ("edit"), or the whole
# list when the start-up entries are not all there in order.


def _syspath_capture():
    live = list(sys.path)
    base = ST.sys_path
    if live == base:
        return ("edit", (), ())
    n = len(base)
    for i in range(len(live) - n + 1):
        if live[i:i + n] == base:
            return ("edit", tuple(live[:i]), tuple(live[i + n:]))
    return ("list", tuple(live))


def _syspath_restore(state):
    if state[0] == "edit":
        new = list(state[1]) + list(ST.sys_path) + list(state[2])
    else:
        new = list(state[1])
    if isinstance(sys.path, list):
        if sys.path != new:
            sys.path[:] = new
    else:
        sys.path = new


# --- @os.environ: (variables set or changed, variables removed) relative to the worker's
# start-up environment plus what libraries set while imported. Restored through os.environ,
# so that putenv / unsetenv happen and subprocesses see it too.


def _env_raw():
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _env_decoders():
    if isinstance(getattr(os.environ, "_data", None), dict):
        return os.environ.decodekey, os.environ.decodevalue
    return (lambda k: k), (lambda v: v)


def _env_init(pristine):
    ST.env_base_raw = _env_raw()
    return ((), ())


def _env_capture():
    data = getattr(os.environ, "_data", None)
    base = ST.env_base_raw
    if isinstance(data, dict) and data == base:
        return ((), ())
    raw = _env_raw()
    dk, dv = _env_decoders()
    changed = sorted((dk(k), dv(v)) for k, v in raw.items() if base.get(k, _MISSING) != v)
    removed = sorted(dk(k) for k in base if k not in raw)
    return (tuple(changed), tuple(removed))


def _env_restore(state):
    changed, removed = state
    dk, dv = _env_decoders()
    want = {dk(k): dv(v) for k, v in ST.env_base_raw.items()}
    for k in removed:
        want.pop(k, None)
    want.update(changed)
    for k in list(os.environ):
        if k not in want:
            del os.environ[k]
    for k, v in want.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


def _env_fold(before, after):
    if before == after:
        return False
    base = ST.env_base_raw
    for k in set(before) | set(after):
        if before.get(k, _MISSING) != after.get(k, _MISSING):
            if k in after:
                base[k] = after[k]
            else:
                base.pop(k, None)
    return True


PROBES = [
    _Probe("@numpy.random", "numpy.random", _np_random_capture, _np_random_restore,
           quick=_np_random_quick),
    _Probe("@random", None, _random_capture, _random_restore),
    _Probe("@matplotlib.rcParams", "matplotlib", _rc_capture, _rc_restore, _rc_init,
           quick=_rc_quick),
    _Probe("@pandas.options", "pandas", _pd_capture, _pd_restore, _pd_init, quick=_pd_quick),
    _Probe("@warnings.filters", None, _warn_capture, _warn_restore, _warn_init,
           _warn_snap, _warn_fold, _warn_quick),
    _Probe("@numpy.printoptions", "numpy", _np_print_capture, _np_print_restore, _np_print_init),
    _Probe("@cwd", None, _cwd_capture, _cwd_restore, lambda pristine: "."),
    _Probe("@sys.path", None, _syspath_capture, _syspath_restore,
           lambda pristine: ("edit", (), ())),
    _Probe("@os.environ", None, _env_capture, _env_restore, _env_init, _env_raw, _env_fold,
           lambda state: _env_raw()),
]
_PROBE_NAMES = frozenset(p.name for p in PROBES)
_PROBE_MODULES = {}  # module -> the probes that need it
for _probe in PROBES:
    if _probe.module is not None:
        _PROBE_MODULES.setdefault(_probe.module, []).append(_probe)


def _probe_dumps(name, state):
    """The blob of a state: `{name: state}` pickled without memo (fast mode: equal values give
    equal bytes whatever their identities), by the C pickler when it can (plain data: cheaper
    than cloudpickle by ~10 us), else by cloudpickle (functions, classes of the notebook)."""
    payload = {name: state}
    for pickler_class in (pickle.Pickler, ST.cloudpickle.Pickler):
        buf = io.BytesIO()
        try:
            pickler = pickler_class(buf, protocol=5)
            pickler.fast = True
            pickler.dump(payload)
            return buf.getvalue()
        except Exception:
            continue
    return ST.cloudpickle.dumps(payload, protocol=5)  # a cycle: fast mode refuses them


def _probe_loaded(p):
    return p.module is None or p.module in sys.modules


def _probe_seen(p, pristine=True):
    """Set p's base and default up the first time its module is seen; False if p is off."""
    if p.name in ST.probe_default:
        return True
    if p.name in ST.probe_off:
        return False
    try:
        state = p.init(pristine) if p.init is not None else p.capture()
        ST.probe_default[p.name] = (state, _probe_dumps(p.name, state))
        return True
    except Exception as e:
        ST.probe_off.add(p.name)
        _diag("state probe %s is off in this worker: %s: %s" % (p.name, type(e).__name__, e))
        return False


def _probe_blob(p, like=None):
    """(state, blob) of p now, blob None if the state cannot be pickled; None if p cannot be
    captured. `like`: a (state, blob) the state may equal, whose blob then is reused."""
    try:
        state = p.capture()
    except Exception as e:
        _diag("cannot capture %s: %s: %s" % (p.name, type(e).__name__, e))
        return None
    if like is not None and like[1] is not None and _same(state, like[0]):
        return like
    try:
        return state, _probe_dumps(p.name, state)
    except Exception:
        return state, None


def _probe_token(p, start):
    """Take p's quick token when a cell starts in `start` (state, blob)."""
    if p.quick is None:
        return
    try:
        token = p.quick(start[0])
    except Exception:
        token = None
    if token is not None:
        ST.probe_tokens[p.name] = token


def _probes_init():
    """At worker start: the defaults of the probes whose module is there."""
    __import__("random")  # (imported by tempfile anyway): @random's default is its state now

    for p in PROBES:
        if _probe_loaded(p):
            _probe_seen(p)
    ST.probes_ready = True


def _probes_begin(inputs):
    """Before a cell: every probe whose module is imported in its wanted state (the input's,
    else the default), skipping those already in it; the start states of the cell, (state,
    blob), in ST.probe_start. Inputs of probes whose module is not imported wait in
    ST.probe_pending for the import. Returns None, or (probe name, exception) when an input
    state cannot be put in place."""
    start = {}
    ST.probe_pending = {}
    ST.probe_tokens = {}
    now = ST.probe_now
    for p in PROBES:
        want = inputs.get(p.name)
        if not _probe_loaded(p) or not _probe_seen(p):
            if want is not None:
                ST.probe_pending[p.name] = want
            continue
        if want is None:
            want = ST.probe_default[p.name]
            is_input = False
        else:
            is_input = True
        known = now.get(p.name)
        if want[1] is not None and known is not None and known[1] == want[1]:
            start[p.name] = want  # already in that state
            _probe_token(p, want)
            continue
        now.pop(p.name, None)
        try:
            p.restore(want[0])
        except Exception as e:
            if is_input:
                ST.probe_start = None
                return p.name, e
            _diag("cannot restore the default of %s: %s: %s" % (p.name, type(e).__name__, e))
        got = _probe_blob(p, want)
        if got is not None:
            start[p.name] = got
            _probe_token(p, got)
    ST.probe_start = start
    ST.probe_now = {k: v for k, v in start.items() if v[1] is not None}
    return None


def _probe_module_imported(fullname):
    """A probe's module was just imported: its default, and, inside a cell, its start state
    (the pending input put in place, else the state it was imported with)."""
    for p in _PROBE_MODULES.get(fullname, ()):
        if not _probe_seen(p):
            continue
        start = ST.probe_start
        if start is None or p.name in start:
            continue
        pending = ST.probe_pending.pop(p.name, None)
        if pending is not None:
            try:
                p.restore(pending[0])
            except Exception as e:
                _diag("cannot restore %s: %s: %s" % (p.name, type(e).__name__, e))
        got = _probe_blob(p, pending or ST.probe_default[p.name])
        if got is not None:
            start[p.name] = got
            _probe_token(p, got)


def _probes_end():
    """After a successful cell: {name: (state, blob or None, changed)} for every probe whose
    module is imported. `changed`: its blob differs from the state the cell started with."""
    start = ST.probe_start or {}
    tokens = ST.probe_tokens
    ST.probe_start = None
    ST.probe_pending = {}
    ST.probe_tokens = {}
    out = {}
    for p in PROBES:
        if not _probe_loaded(p) or not _probe_seen(p, pristine=False):
            continue
        # Imported without our hook seeing it: it started from its default.
        before = start.get(p.name) or ST.probe_default[p.name]
        token = tokens.get(p.name)
        if token is not None and before[1] is not None:
            try:
                if p.quick(before[0]) == token:
                    out[p.name] = (before[0], before[1], False)
                    continue
            except Exception:
                pass
        got = _probe_blob(p, before)
        if got is None:
            continue
        state, blob = got
        changed = blob is None or before[1] is None or blob != before[1]
        out[p.name] = (state, blob, changed)
    ST.probe_now = {k: (v[0], v[1]) for k, v in out.items() if v[1] is not None}
    return out


def _probes_forget():
    """After a failed cell (or a runner error): the probes' states are unknown."""
    ST.probe_start = None
    ST.probe_pending = {}
    ST.probe_tokens = {}
    ST.probe_now = {}


def _window_open():
    """Start of an import window: the outermost import in progress (or IPython's set-up).
    Returns the raw snapshots of the probes that fold; `_window_close` makes what changed
    meanwhile part of their bases, so it is never attributed to a cell."""
    ST.import_depth += 1
    snaps = {}
    for p in PROBES:
        if p.snap is not None and p.name in ST.probe_default:
            try:
                snaps[p.name] = (p, p.snap())
            except Exception:
                pass
    return snaps


def _window_close(snaps):
    ST.import_depth -= 1
    for name, (p, before) in (snaps or {}).items():
        try:
            if p.fold(before, p.snap()) and ST.probe_start is None:
                ST.probe_now.pop(name, None)  # between cells: recapture before the next one
        except Exception as e:
            _diag("state probe %s: %s: %s" % (name, type(e).__name__, e))


# ---------------------------------------------------------------------------------------------
# File tracking (PROTOCOL.md, "Files")
#
# One audit hook, installed at start-up, records while a cell runs what it does to files under
# the project root: files opened for reading (inputs, unless the cell wrote them first),
# directories listed, files opened for writing, created directories, removals and renames
# (outputs). The parent hashes and stores them. Ignored: paths outside the root, the
# interpreter's own prefixes (a virtualenv inside the project), the store, `__pycache__`, and
# what the import system does (module sources are charged to the cells using the module, from
# the values they hold, at the end of the cell).

_FILE_EVENTS = frozenset((
    "open", "os.listdir", "os.scandir", "os.mkdir", "os.rmdir", "os.remove", "os.rename",
    "shutil.rmtree", "os.truncate", "os.link", "os.symlink",
))
_O_WRITES = os.O_CREAT | os.O_TRUNC | os.O_APPEND
_O_ACCMODE = getattr(os, "O_ACCMODE", 3)


class _FileTrace:
    """What one cell did to files under the root: relative paths, in first-seen order."""

    def __init__(self, root, excluded):
        self.root = root
        self.prefix = root if root.endswith(os.sep) else root + os.sep
        self.excluded = tuple(e.rstrip(os.sep) + os.sep for e in excluded if e)
        self.read = {}
        self.listed = {}
        self.written = {}
        self.active = False

    def rel(self, path):
        if isinstance(path, int) or path is None:
            return None
        path = os.fsdecode(path)
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        path = os.path.normpath(path)
        if path + os.sep == self.prefix:
            return "."
        if not path.startswith(self.prefix):
            return None
        probe = path + os.sep
        for excluded in self.excluded:
            if probe.startswith(excluded):
                return None
        rel = path[len(self.prefix):]
        parts = rel.split(os.sep)
        if "__pycache__" in parts or ".ipynb_checkpoints" in parts or ".git" in parts:
            return None
        return "/".join(parts)

    def on_read(self, path):
        rel = self.rel(path)
        if rel is not None and rel not in self.written:
            self.read.setdefault(rel, True)

    def on_write(self, path):
        rel = self.rel(path)
        if rel is not None:
            self.written.setdefault(rel, True)

    def on_list(self, path):
        rel = self.rel("." if path is None else path)
        if rel is not None:
            self.listed.setdefault(rel, True)


def _from_importlib():
    try:
        return sys._getframe(2).f_code.co_filename.startswith("<frozen importlib")
    except Exception:
        return False


def _file_audit(event, args):
    if event not in _FILE_EVENTS:
        return
    trace = ST.files
    if trace is None or not trace.active:
        return
    try:
        if event == "open":
            path, mode, flags = args
            if _from_importlib():
                return
            access = flags & _O_ACCMODE
            if access != os.O_WRONLY and not (flags & os.O_TRUNC):
                trace.on_read(path)
            if access != os.O_RDONLY or flags & _O_WRITES:
                trace.on_write(path)
        elif event in ("os.listdir", "os.scandir"):
            if not _from_importlib():
                trace.on_list(args[0])
        elif event in ("os.rename", "os.link", "os.symlink"):
            if event == "os.rename":
                trace.on_write(args[0])
            trace.on_write(args[1])
        else:  # mkdir, rmdir, remove, rmtree, truncate: the first argument
            trace.on_write(args[0])
    except Exception:
        pass  # never fail the cell's own call


def _files_install():
    try:
        sys.addaudithook(_file_audit)
    except Exception:
        pass


_FILES_EXCLUDED = {}  # (root, store) -> the prefixes not traced


def _files_begin(req):
    """Starts tracing for a cell when the request names a project root."""
    root = req.get("root")
    if not root:
        ST.files = None
        return
    store = req.get("store") or ""
    excluded = _FILES_EXCLUDED.get((root, store))
    if excluded is None:
        excluded = [store]
        for prefix in {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}:
            excluded.append(prefix)
        excluded.extend(_site_dirs())
        normal = os.path.normpath(root) + os.sep
        # The root may be inside a prefix (a project under a virtualenv): keep the root.
        excluded = [e for e in excluded if e and not normal.startswith(e.rstrip(os.sep) + os.sep)]
        _FILES_EXCLUDED[(root, store)] = excluded
    ST.files = _FileTrace(os.path.normpath(root), excluded)


def _module_file(obj):
    """The source file of the module a value comes from, for modules, functions and classes."""
    if isinstance(obj, types.ModuleType):
        module = obj
    else:
        name = getattr(obj, "__module__", None) if isinstance(obj, (type, types.FunctionType)) else None
        if not isinstance(name, str) or name == "__main__":
            return None
        module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) else None


def _files_end(ns):
    """The trace of the cell as the result reports it; also charges local modules."""
    trace = ST.files
    ST.files = None
    if trace is None:
        return None
    trace.active = False
    for value in list(ns.values()):
        try:
            path = _module_file(value)
        except Exception:
            path = None
        if path is not None:
            trace.on_read(path)
    return {
        "read": list(trace.read),
        "listed": list(trace.listed),
        "written": list(trace.written),
    }


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
        # Not .instance(): libraries probing IPython's get_ipython() keep seeing None. What the
        # shell does to warnings filters and the environment is the worker's, not the cell's.
        snaps = _window_open()
        try:
            ST.shell = WorkerShell(config=config, user_module=module)
        finally:
            _window_close(snaps)
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
    if not isinstance(sys.path, list):  # its content is the @sys.path probe's business
        try:
            sys.path = [p for p in sys.path]
        except Exception:
            sys.path = list(ST.sys_path)
    if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        _install_post_import()
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


def _load_group(group, names, blobs, loaded, ns, input_names, probe_inputs, known_columns):
    """Bind the names of one input group in ns (state probes go to probe_inputs instead).

    The values of the group's `columns` (long lists or tuples of atoms, as the worker that
    made the blob found) go to known_columns as (name, value)."""
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
            known = ST.probe_now.get(names[0]) if len(names) == 1 else None
            if known is not None and known[1] == blobs[index]:
                # The state this worker is in: no need to unpickle it again.
                probe_inputs[names[0]] = known
                return
            values = _CellUnpickler(io.BytesIO(blobs[index]), ns).load()
            ns["__builtins__"] = builtins
            if not isinstance(values, dict):
                raise TypeError("input blob %d is not a dict of values" % index)
            _relink_copies(values)
            loaded[index] = values
            for name in group.get("columns") or ():
                value = values.get(name)
                if type(value) is list or type(value) is tuple:
                    known_columns.append((name, value))
        values = loaded[index]
    for name in names:
        if name not in values:
            raise LookupError("input %r is missing from its group" % name)
        if name.startswith("@"):  # a state probe: never bound in the namespace
            if name not in _PROBE_NAMES:
                _diag("unknown state probe %s ignored" % name)
                continue
            blob = None
            if group.get("blob") is not None and len(names) == 1 and len(values) == 1:
                blob = bytes(blobs[group["blob"]])  # the bytes a worker made: its blob
            else:
                try:
                    blob = _probe_dumps(name, values[name])
                except Exception:
                    blob = None
            probe_inputs[name] = (values[name], blob)
            continue
        ns[name] = values[name]
        input_names.append(name)


def _input_error(names, e):
    """(error, output) of inputs that could not be loaded."""
    head = "nbmemo: could not load the inputs %s of this cell:" % ", ".join(names)
    lines = [head] + "".join(traceback.format_exception_only(type(e), e)).splitlines()
    err = {"ename": type(e).__name__, "evalue": str(e), "traceback": lines, "line": None}
    out = {"output_type": "error", "ename": err["ename"], "evalue": err["evalue"],
           "traceback": list(lines)}
    return err, out


def _handle_exec(req, blobs):
    cell = req.get("cell")
    source = req.get("code") or ""
    filename = req.get("filename") or "<cell %s>" % cell
    writes = req.get("writes")  # None: a barrier cell, every name it leaves bound is returned
    writes = None if writes is None else list(writes)
    candidates = list(req.get("candidates") or [])
    suppressed = bool(req.get("display_suppressed"))
    res = _result(cell)

    cwd = req.get("cwd") or ST.start_cwd
    try:
        os.chdir(cwd)
        ST.cwd_base = os.getcwd()
    except OSError as e:
        return _fail(res, *_simple_error(type(e).__name__, "cannot chdir to %r: %s" % (cwd, e), []))
    if "@cwd" in ST.probe_default:
        ST.probe_now["@cwd"] = ST.probe_default["@cwd"]  # "." is where the worker is now

    module = types.ModuleType("__main__")
    ns = module.__dict__
    ST.spent = (ns, blobs)
    for k in list(ns):
        if k != "__name__":
            del ns[k]
    ns["__builtins__"] = builtins

    # Inputs. The groups holding state probes first, and the probes put in place (sys.path,
    # the working directory...) before the other values are unpickled: unpickling imports the
    # modules of their classes, which may live in a folder a cell added to sys.path.
    input_names = []
    probe_inputs = {}  # probe name -> (state, blob or None)
    loaded = {}
    known_columns = []  # (name, value) of inputs known to be columns of atoms
    ST.copy_parents = []
    groups = list(req.get("inputs") or [])
    with_probes = [any(str(n).startswith("@") for n in g.get("names") or []) for g in groups]
    trackers = _TrackerIds(filename, source, groups, blobs)
    for phase in (True, False):
        for group in (g for g, w in zip(groups, with_probes) if w is phase):
            names = list(group.get("names") or [])
            try:
                _load_group(group, names, blobs, loaded, ns, input_names, probe_inputs,
                            known_columns)
            except BaseException as e:
                if not phase:
                    _probes_forget()
                return _fail(res, *_input_error(names, e))
        if phase:
            with trackers:
                failed = _probes_begin(probe_inputs)
            if failed is not None:
                _probes_forget()
                return _fail(res, *_input_error([failed[0]], failed[1]))
    loaded.clear()
    inputs_set = set(input_names)
    captured_only = {k: v for k, v in ns.items() if k not in inputs_set and k not in ("__name__", "__builtins__")}
    bound_before = set(ns)
    unchecked = _unchecked(req.get("unchecked"), ns)
    candidates = [n for n in candidates if n not in unchecked]
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
    _files_begin(req)
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
            if ST.files is not None:
                ST.files.active = True
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
        if ST.files is not None:
            ST.files.active = False
        data = cap.stop()
        ST.capture = None
        _restore_globals_state()

    res["files"] = _files_end(ns)
    res["duration_s"] = duration
    res["stdout"] = data["stdout"].decode("utf-8", "replace")
    res["stderr"] = data["stderr"].decode("utf-8", "replace")
    res["outputs"] = cap.build_outputs(data)
    if error is not None:
        _probes_forget()
        res["status"] = "error"
        res["error"] = error[0]
        if ST.memory_limit and error[0].get("ename") == "MemoryError":
            # The machine's limit, not the cell's doing: not a result to cache.
            res["cacheable"] = False
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
        probes = _probes_end()
        return _collect_values(res, ns, writes, candidates, returned, before, rebound, inputs_set,
                               bound_before, probes, known_columns)


def _collect_values(res, ns, writes, candidates, returned, before, rebound, inputs_set,
                    bound_before, probes=None, known_columns=()):
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
    columns = set()
    if returned:
        present_inputs = sorted(n for n in inputs_set if n in ns and n not in returned)
        # An input column is still one unless the cell changed it: not when a name it was
        # loaded under is returned (mutated or rebound). Other changes are the analysis's
        # to see, as for every input that is not a candidate.
        changed = set(id(v) for n, v in known_columns if n in returned)
        known = {id(v): v for n, v in known_columns if id(v) not in changed}
        roots = _share_groups(ns, sorted(returned), present_inputs, known_columns=known,
                              columns=columns)
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
            links = _copy_links(payload)
            if links:
                payload[_COPY_OF] = links
            blob = _dumps_group(payload)
        except BaseException as e:
            ST.resident_counter += 1
            rid = "r%d" % ST.resident_counter
            ST.residents[rid] = payload
            unpicklable.extend(_unpicklable_entries(payload, rid, e))
            continue
        entry = {"names": group, "blob": len(out_blobs)}
        held = [n for n in group if n in columns]
        if held:
            entry["columns"] = held
        values.append(entry)
        out_blobs.append(blob)
    # State probes: each its own group, when it changed, or when `writes` names it (as a name
    # bound after the cell is returned; a barrier's `writes` names no probe: it returns those
    # it changed).
    written = set(writes)
    for name, (state, blob, changed) in sorted((probes or {}).items()):
        if not (changed or name in written):
            continue
        if changed and name in candidates:
            mutated.append(name)
        if blob is None:
            ST.resident_counter += 1
            rid = "r%d" % ST.resident_counter
            ST.residents[rid] = {name: state}
            unpicklable.append({"name": name, "type": type(state).__qualname__, "resident": rid,
                                "reason": "the state of %s cannot be pickled" % name})
            continue
        values.append({"names": [name], "blob": len(out_blobs)})
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
        "probes": [p.name for p in PROBES],
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
    _widen_pipes(proto_in, proto_out)


def _widen_pipes(*fds):
    """Values cross the protocol pipes by the megabyte: a 1 MiB pipe buffer (Linux's default
    limit for unprivileged processes) instead of 64 KiB moves them in one go rather than in
    sixteen wake-ups of each side. Where that is refused, the default stays."""
    try:
        import fcntl
        setpipe = fcntl.F_SETPIPE_SZ
    except (ImportError, AttributeError):
        return
    for fd in fds:
        try:
            fcntl.fcntl(fd, setpipe, 1 << 20)
        except OSError:
            pass


def _parse_size(text):
    """`500MB`, `2GiB`, `1.5G`, `1000000` -> bytes (None if unreadable)."""
    text = (text or "").strip().upper().replace(" ", "")
    units = (("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40),
             ("KB", 10 ** 3), ("MB", 10 ** 6), ("GB", 10 ** 9), ("TB", 10 ** 12),
             ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1))
    for suffix, factor in units:
        if text.endswith(suffix):
            try:
                return int(float(text[: -len(suffix)]) * factor)
            except ValueError:
                return None
    try:
        return int(text)
    except ValueError:
        return None


def _limit_memory():
    """NBMEMO_MEMORY_LIMIT: cap the worker's address space (RLIMIT_AS)."""
    limit = _parse_size(os.environ.get("NBMEMO_MEMORY_LIMIT"))
    ST.memory_limit = limit
    if not limit:
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception as e:
        _diag("cannot limit memory to %d bytes: %r" % (limit, e))
        ST.memory_limit = None


def _setup_process():
    _limit_memory()
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
    _files_install()
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
    ST.start_cwd = ST.cwd_base = os.getcwd()
    _probes_init()


def _preload(packages):
    """Imports packages a notebook imports while the worker waits for its first cell (nbmemo
    sends only data libraries known to have no import-time effect on results). Whatever they
    print is discarded; one that fails is left for the cell importing it to report."""
    import importlib
    import io
    for name in packages:
        if not isinstance(name, str) or name in sys.modules:
            continue
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = io.StringIO()
        try:
            importlib.import_module(name)
        except BaseException:
            pass
        finally:
            sys.stdout, sys.stderr = saved


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
                _probes_forget()
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
            # The parent has the result: now free the cell's values, its inputs and outputs.
            ST.spent = res = out_blobs = None
        elif kind == "drop":
            for rid in header.get("resident") or []:
                ST.residents.pop(rid, None)
        elif kind == "preload":
            _preload(header.get("packages") or [])
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
