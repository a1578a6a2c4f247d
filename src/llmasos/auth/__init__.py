"""Who may use the server: API keys with owners and roles (keys), and the audit log (audit)."""
