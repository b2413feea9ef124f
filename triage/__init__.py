"""acs-triage: Azure Communication Services failures as chat alerts people can act on."""

__version__ = "0.1.0"
