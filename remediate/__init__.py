"""remediate: keeps Salesforce server-to-server integrations working.

Audit, plan, apply and verify the org configuration that OAuth client-credentials and JWT-bearer
integrations depend on, from declarative playbooks, with a built-in sandbox org for running and
testing everything without a real org.
"""

__version__ = "0.1.0.dev0"
