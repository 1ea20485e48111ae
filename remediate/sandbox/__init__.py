"""The sandbox org: a wire-level Salesforce emulator. It imports nothing of the product (ADR 0074)."""
