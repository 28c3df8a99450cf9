"""Request parsers. Apart from config.api, which imports DRF's views: those read the
parser setting when imported, and naming a class in a module that imports them would be
circular."""

from __future__ import annotations

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested past Python's recursion limit answered as the
    400 any other malformed body gets, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply") from error
