"""Diagnosis: pure functions from a Snapshot to Findings a person acts on. No Textual here."""
