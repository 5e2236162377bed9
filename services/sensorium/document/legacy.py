"""Legacy binary Office (.doc, .xls, .ppt): converted to .docx/.xlsx/.pptx with LibreOffice,
then read like those.

Each conversion runs `soffice --headless --convert-to` with a profile directory of its own (two
conversions sharing a profile block each other), in a process group of its own that is killed
whole past the timeout (soffice starts soffice.bin under it), with its own memory cap: the
worker's RLIMIT_AS would be too small for LibreOffice, which maps ~1 GB at start.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from sensorium.document.api import DocumentKind
from sensorium.document.guards import encrypted, unreadable
from sensorium.errors import Reason, SensoriumError

TARGETS = {DocumentKind.DOC: "docx", DocumentKind.XLS: "xlsx", DocumentKind.PPT: "pptx"}
NAMES = {DocumentKind.DOC: "Word 97-2003 (.doc)", DocumentKind.XLS: "Excel 97-2003 (.xls)",
         DocumentKind.PPT: "PowerPoint 97-2003 (.ppt)"}
PACKAGES = {DocumentKind.DOC: "libreoffice-writer-nogui", DocumentKind.XLS: "libreoffice-calc-nogui",
            DocumentKind.PPT: "libreoffice-impress-nogui"}
_SOFFICE_MEMORY_BYTES = 4 * 1024 * 1024 * 1024
log = logging.getLogger("sensorium.document")


def soffice(configured: str = "") -> str | None:
    """The LibreOffice binary (`configured`, else found on PATH), or None when there is none."""
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("soffice") or shutil.which("libreoffice")


def missing(kind: DocumentKind, configured: str = "") -> SensoriumError:
    """The skip reason for a legacy file where LibreOffice is not installed: names the fix."""
    where = (f"the configured {configured} is not an executable file" if configured
             else "it is not installed here")
    return SensoriumError(
        Reason.UNSUPPORTED_TYPE,
        f"{NAMES[kind]} files are read by converting them with LibreOffice, and {where}; install it "
        f"(Debian/Ubuntu: apt-get install {PACKAGES[kind]}; the Sensorium container images include "
        "it) or save the file in the newer format",
        {"missing": "soffice"}, setting="document.soffice",
    )


def check_not_encrypted(path: str, kind: DocumentKind) -> None:
    import msoffcrypto
    from msoffcrypto.exceptions import FileFormatError

    try:
        with open(path, "rb") as handle:
            protected = msoffcrypto.OfficeFile(handle).is_encrypted()
    except (FileFormatError, OSError, ValueError, KeyError, IndexError, AssertionError, TypeError, EOFError):
        return  # msoffcrypto does not know every variant; LibreOffice will tell
    if protected:
        raise encrypted(f"the {NAMES[kind]} file")


def convert(path: str, kind: DocumentKind, workdir: str, timeout: float, binary_path: str = "") -> str:
    """Convert the file at `path` with LibreOffice (`binary_path`, else found on PATH);
    returns the converted file's path inside `workdir`."""
    binary = soffice(binary_path)
    if binary is None:
        raise missing(kind, binary_path)
    check_not_encrypted(path, kind)
    target = TARGETS[kind]
    source = Path(workdir) / f"source.{kind.value}"  # a plain name: soffice parses its arguments
    os.symlink(os.path.abspath(path), source)
    profile = tempfile.mkdtemp(prefix="lo-profile-", dir=workdir)
    command = [binary, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
               "--nolockcheck", "--convert-to", target, "--outdir", workdir, str(source)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, preexec_fn=_lift_memory_cap, cwd=workdir)
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"converting the {NAMES[kind]} file with LibreOffice took longer than {timeout:g} s; "
            "save it in the newer format",
            {"limit_seconds": f"{timeout:g}"}, setting="document.soffice_timeout_seconds",
        ) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    converted = Path(workdir) / f"source.{target}"
    if process.returncode != 0 or not converted.is_file():
        # Its words go to the log, not to the caller: they name files on this machine.
        log.warning("LibreOffice could not convert a %s file (exit %s): %s", kind.value, process.returncode,
                    err.decode("utf-8", "replace").strip()[-500:] if err else "no output")
        raise unreadable(
            f"LibreOffice could not convert the {NAMES[kind]} file; it is damaged or not that format"
        )
    return str(converted)


def _lift_memory_cap() -> None:
    """Runs in the soffice child: the worker's address-space cap is too small for LibreOffice."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _SOFFICE_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, _SOFFICE_MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]  # the timeout bounds it instead
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))
