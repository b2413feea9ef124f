"""Development tools that never ship with the Function App: local webhook sinks, the seed-page
parser, card previews and the local stand-in for the Functions host. The runtime package
`triage` never imports these on the request path; `python -m triage` loads them on demand."""
