"""Runs browser.cjs (playwright-core driving Debian's chromium) over Label Studio labeling pages and returns
what each page drew: region list labels, video timeline rows, time-series brush regions, and a screenshot."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixtures.servers import E2E_DIR, LS_PASSWORD, LS_USER

SCRIPT = Path(__file__).with_name("browser.cjs")
PLAYWRIGHT = E2E_DIR / "node" / "node_modules" / "playwright-core"
SCREENSHOTS = E2E_DIR / "screenshots"


@dataclass(frozen=True)
class Page:
    """A labeling page to open: `/projects/<project>/data?task=<task>`."""

    name: str
    project: int
    task: int


def render(base_url: str, pages: list[Page], timeout_s: float = 300) -> dict[str, dict[str, Any]]:
    """Logs in once, opens every page, saves a screenshot per page under .e2e/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    job = {
        "base": base_url,
        "email": LS_USER,
        "password": LS_PASSWORD,
        "playwright": str(PLAYWRIGHT),
        "pages": [
            {
                "name": page.name,
                "path": f"/projects/{page.project}/data?task={page.task}",
                "screenshot": str(SCREENSHOTS / f"{page.name}.png"),
            }
            for page in pages
        ],
    }
    job_file = SCREENSHOTS / "job.json"
    job_file.write_text(json.dumps(job))
    done = subprocess.run(
        ["node", str(SCRIPT), str(job_file)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"browser run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout)
    for name, evidence in report.items():
        print(f"screenshot of {name}: {evidence['screenshot']}")
    return report


def page_errors(evidence: dict[str, Any]) -> list[str]:
    """Uncaught exceptions of the labeling app: a malformed prediction typically shows up here first."""
    return [problem for problem in evidence["problems"] if problem.startswith("pageerror")]
