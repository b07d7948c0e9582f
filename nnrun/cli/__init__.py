"""The commands: parse, call one function of the layers below, render its result, map errors to exit codes.

The top layer. At load it imports only click and rich, so `nnrun --help` is instant.
"""
