"""The importer every exported file starts with: it serves the modules embedded in the file.

Why an importer rather than one inlined namespace: each embedded module keeps its source
verbatim under its own dotted name, so ``from package import name``, relative imports,
package ``__init__``s and two modules defining the same name work exactly as they do in the
backtest. The finder goes first on ``sys.meta_path`` and answers ONLY the embedded names;
the standard library and the pinned third-party packages import as usual.

The lines between the two markers are copied verbatim into every export (so they may use
the standard library only); `exporters.compiler` reads them with `bootstrap_source()`.
"""

from __future__ import annotations

from pathlib import Path

BEGIN = "# --- embedded importer: begin ---"
END = "# --- embedded importer: end ---"


def bootstrap_source() -> str:
    """The importer's source as it appears in an export (between the markers, inclusive)."""
    text = Path(__file__).read_text(encoding="utf-8")
    start = text.index(f"\n{BEGIN}\n") + 1
    stop = text.index(f"\n{END}\n", start) + len(END) + 1
    return text[start:stop] + "\n"


# --- embedded importer: begin ---
import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import linecache  # noqa: E402
import sys  # noqa: E402


class EmbeddedImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the modules embedded in one exported file, and nothing else.

    `modules` maps a dotted name to (is_package, source). `omitted` maps a module the export
    deliberately leaves out to the sentence an import of it raises. Tracebacks name an
    embedded line as ``<export file>/<package>/<module>.py`` and show its source. Where the
    file system holds a module with the very same source (a process that has tradeship,
    e.g. `tradeship verify-parity`), that file is used: the same code, a real ``__file__``.
    """

    def __init__(self, modules, origin, omitted=None):
        self.modules = dict(modules)
        self.origin = str(origin)
        self.omitted = dict(omitted or {})

    def filename(self, fullname):
        is_package = self.modules[fullname][0]
        relative = fullname.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        return f"{self.origin}/{relative}"

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.omitted:
            # a process that has it on disk (tradeship itself) keeps it; elsewhere: say why
            if importlib.machinery.PathFinder.find_spec(fullname, path) is not None:
                return None
            raise ModuleNotFoundError(self.omitted[fullname], name=fullname)
        if fullname not in self.modules:
            return None
        if self.on_disk_as_embedded(fullname, path):
            return None  # e.g. inside tradeship itself: the same code, with its real __file__
        spec = importlib.util.spec_from_loader(
            fullname,
            self,
            origin=self.filename(fullname),
            is_package=self.modules[fullname][0],
        )
        spec.has_location = True  # sets __file__ to the origin string
        return spec

    def on_disk_as_embedded(self, fullname, path):
        """Whether the file system holds this module with exactly the embedded source."""
        try:
            found = importlib.machinery.PathFinder.find_spec(fullname, path)
            if found is None or not str(found.origin or "").endswith(".py"):
                return False
            with open(found.origin, "rb") as handle:
                on_disk = importlib.util.decode_source(handle.read())
        except (ImportError, OSError, ValueError):
            return False
        return on_disk == self.modules[fullname][1]

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__spec__.name
        source = self.modules[name][1]
        filename = self.filename(name)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, fullname):
        return self.modules[fullname][1]

    def is_package(self, fullname):
        return self.modules[fullname][0]


def _loaded_source(module):
    """The source a module already in sys.modules was loaded from, or None if unknown."""
    loader = getattr(getattr(module, "__spec__", None), "loader", None)
    try:
        return loader.get_source(module.__name__) if loader is not None else None
    except (ImportError, OSError, AttributeError, TypeError):
        return None


def install_embedded(modules, origin, omitted=None):
    """Put the importer for `modules` first on sys.meta_path (once per export file).

    A process that already imported one of these names from different source (e.g. a
    verification run of an old export inside a newer tradeship) would silently run the
    wrong code, so that is refused.
    """
    for name, (_, source) in sorted(modules.items()):
        loaded = sys.modules.get(name)
        if loaded is None:
            continue
        current = _loaded_source(loaded)
        if current is not None and current != source:
            raise ImportError(
                f"this process already imported {name} from {getattr(loaded, '__file__', '?')}, "
                f"which differs from the copy embedded in {origin}: run the export in a fresh "
                "process (python -I FILE.py) or export it again"
            )
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if not (
            type(finder).__name__ == "EmbeddedImporter"
            and getattr(finder, "origin", None) == str(origin)
        )
    ]
    importer = EmbeddedImporter(modules, origin, omitted)
    sys.meta_path.insert(0, importer)
    return importer


# --- embedded importer: end ---
