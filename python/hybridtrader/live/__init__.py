"""Live trading: the node (`LiveNode`) that runs the engine's `Trader` against Alpaca or the local venue
(`AlpacaBroker`), with its SQLite journal, reconciliation before trading and an ops endpoint. Nothing below
imports it; it imports no `venue/` code (the CLI and the tests start venues)."""
