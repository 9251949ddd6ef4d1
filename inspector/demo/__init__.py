"""`inspector demo`: a buggy shop API served under the agent, traffic that sets its bugs off,
and the list of findings the inspector is expected to report for it.

The demo app itself is `demo_app.py` at the repository root (application code, so the
inspector's "innermost application frame" points into it, not into this package).
"""
