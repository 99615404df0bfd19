"""Tools production never runs: the dev mint and dev stack (`nutgate run`), the demo upstream,
the settings-table generator, and the process helpers tests and the bench share."""
