"""README tells the truth about which torch build install.sh gets, and how to choose it."""

import subprocess

from conftest import REPO


def test_install_script_passes_torch_index_url_to_pip():
    script = (REPO / "scripts" / "install.sh").read_text()
    assert 'torch_index=(--index-url "$TORCH_INDEX_URL")' in script
    assert '"${torch_index[@]}" "torch==${TORCH_VERSION:-2.13.0}"' in script
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "install.sh")]).returncode == 0


def test_readme_says_the_version_is_pinned_not_the_build():
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "pinned to the CPU build" not in readme
    assert "pins torch's *version*" in readme and "TORCH_INDEX_URL" in readme
