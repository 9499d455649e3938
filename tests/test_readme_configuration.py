"""The README's Configuration table names every ``C360_*`` variable the platform reads, so a
setting added in code cannot stay unknown to the people who run it."""

import re

from c360.settings import PROJECT_ROOT

# Where the platform reads its settings: its packages, and dbt's profile, project and macros.
READ_IN = ["c360", "orchestration", "cli", "ml", "expectations", "app"]
DBT_FILES = ["dbt_project/profiles.yml", "dbt_project/dbt_project.yml"]
VARIABLE = re.compile(r"\bC360_[A-Z0-9_]+\b")


def variables_read() -> set[str]:
    files = [p for folder in READ_IN for p in (PROJECT_ROOT / folder).rglob("*.py")]
    files += [PROJECT_ROOT / f for f in DBT_FILES]
    files += list((PROJECT_ROOT / "dbt_project" / "macros").rglob("*.sql"))
    return {name for path in files for name in VARIABLE.findall(path.read_text(encoding="utf-8"))}


def configuration_table() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_every_variable_the_platform_reads_is_in_the_readme_configuration_table():
    read = variables_read()
    assert {"C360_HOME", "C360_WAREHOUSE", "C360_DBT_IN_PROCESS"} <= read  # the scan finds them
    documented = set(re.findall(r"`(C360_[A-Z0-9_]+)`", configuration_table()))
    assert sorted(read - documented) == []
