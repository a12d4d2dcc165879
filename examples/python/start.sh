#!/bin/sh
# Command-line mode entry point: the fizzlet runs `start.sh <input file>` once per request,
# in this folder, with F2S_METHOD, F2S_PATH, F2S_QUERY, F2S_CONTENT_TYPE and F2S_REQUEST_ID
# set. stdout is the answer; a non-zero exit is a 500 carrying the tail of stderr.
exec python3 "$(dirname "$0")/handler.py" "$1"
