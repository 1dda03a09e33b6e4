"""What `pip install .` installs is what the README's `requirements.txt` installs."""

import tomllib

from config import PROJECT_DIR


def requirement_lines(name: str) -> list[str]:
    lines = (PROJECT_DIR / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))]


def test_the_package_depends_on_exactly_requirements_txt():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == requirement_lines("requirements.txt")
    assert project["optional-dependencies"]["torch"] == requirement_lines("requirements-torch.txt")


def test_the_quick_start_installs_no_torch():
    names = " ".join(requirement_lines("requirements.txt")).lower()
    assert "torch>" not in names and "torchvision" not in names and "timm" not in names
    assert "opencv-python-headless" in names  # verification: never silently off
