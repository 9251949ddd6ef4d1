"""What `pip install uvicorn-inspector` gives a production image, read from the built wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.helpers.server import REPO_ROOT

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=180,
    )
    [built] = out.glob("uvicorn_inspector-*.whl")
    return zipfile.ZipFile(built)


def metadata(wheel: zipfile.ZipFile) -> list[str]:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode()).get_all("Requires-Dist") or []


def test_the_wheel_carries_the_demo_app_and_the_launcher(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "inspector/demo/demo_app.py" in names  # `inspector demo` after `pip install .`
    assert "inspector/agent/site/sitecustomize.py" in names  # `inspector run -- COMMAND`
    packaged = wheel.read("inspector/demo/demo_app.py")
    assert packaged == (REPO_ROOT / "demo_app.py").read_bytes()


def test_a_server_image_gets_ranges_and_no_ui(wheel: zipfile.ZipFile) -> None:
    required = metadata(wheel)
    base = [r for r in required if "extra ==" not in r]
    assert not any(r.lower().startswith("textual") for r in base), base
    versions = [r.split(";")[0] for r in required]
    assert not any("==" in v for v in versions), versions  # ranges, never exact pins
    assert any(r.startswith("textual") and "extra == 'ui'" in r.replace('"', "'") for r in required)


def test_the_packaged_demo_app_is_found_outside_a_source_tree(tmp_path: Path) -> None:
    """The lookup `inspector demo` uses, run from a copy of the package with no repo around."""
    import shutil

    copy = tmp_path / "site" / "inspector"
    shutil.copytree(REPO_ROOT / "inspector", copy)
    shutil.copy(REPO_ROOT / "demo_app.py", copy / "demo" / "demo_app.py")
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from inspector.demo.expected import demo_app_path; print(demo_app_path())",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.stdout.strip() == str(copy / "demo" / "demo_app.py"), found.stderr


def test_attach_without_the_ui_extra_says_how_to_get_it() -> None:
    """A server image without Textual: `attach` explains in one line, `ps` still works."""
    hide_textual = "import sys; sys.modules['textual'] = None; from inspector.cli import main; "
    attach = subprocess.run(
        [sys.executable, "-c", hide_textual + "sys.exit(main(['attach', '127.0.0.1:9']))"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert attach.returncode == 2
    assert attach.stderr.count("\n") == 1 and "uvicorn-inspector[ui]" in attach.stderr
    ps = subprocess.run(
        [sys.executable, "-c", hide_textual + "sys.exit(main(['ps']))"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ps.returncode == 0, ps.stderr
