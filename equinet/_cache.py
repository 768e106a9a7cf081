r"""Where equinet keeps files between runs, and how it writes them.

One per-user folder, ``$EQUINET_CACHE`` or ``~/.cache/equinet`` by default (``$XDG_CACHE_HOME``
is honoured), created with owner-only permissions (``0o700``) because files in it are
read back later (data caches) or even imported (compiled kernels): a folder other local
users can write to would let them plant content.

Everything written there goes through :func:`atomic_write`: the bytes land in a temporary
file in the same folder and are renamed over the target only once complete, so a crash or
Ctrl-C leaves either the old file or the new one, never a truncated one.
"""
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

__all__ = ["cache_dir", "atomic_write"]


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a subfolder of it), created owner-only if missing.

    Parameters
    ----------
    *parts : str
        Subfolder names below the cache root, e.g. ``cache_dir("qm9")``.

    Returns
    -------
    pathlib.Path
        ``$EQUINET_CACHE/<parts...>``, default root ``~/.cache/equinet``.

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["EQUINET_CACHE"] = root = tempfile.mkdtemp()
    >>> p = cache_dir("doctest")
    >>> p.is_dir(), oct(p.stat().st_mode & 0o777)
    (True, '0o700')
    >>> del os.environ["EQUINET_CACHE"]
    """
    root = os.environ.get("EQUINET_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "equinet")
    path = Path(root, *parts)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("done")
    >>> open(target).read()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
