"""How clients get snapshots: live agents, plain aiomonitor, saved files. No Textual here."""
