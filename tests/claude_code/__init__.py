"""Helpers and tests that drive the real Claude Code CLI (pinned in /package.json)."""
