"""`vlm chat --model DIR [IMAGE ...]`: a multi-turn dialogue in the terminal, the answers streamed token by token.

Lines typed are messages; the images given on the command line are shown with the first one. Commands:
    /image PATH   show this image with the next message
    /reset        forget the dialogue
    /quit         leave (end of input too)
Notices (an image added, old turns dropped to fit the context, a bad image or message) go to standard error, so
standard output holds the answers alone when it is piped.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, TextIO

from .generate import add_generation_arguments, generation_options, load_predictor

COMMANDS = '/image PATH, /reset, /quit'


def _say(text: str) -> None:
    print(f'vlm chat: {text}', file=sys.stderr, flush=True)


def _read_line(interactive: bool, stream: TextIO) -> Optional[str]:
    """The next line typed, None at the end of input."""
    if interactive:
        try:
            return input('you> ')
        except EOFError:
            return None
    line = stream.readline()
    return None if not line else line.rstrip('\n')


def _command(session, line: str) -> bool:
    """Run a /command; False for /quit."""
    from vlm.errors import DataError

    name, _, argument = line.partition(' ')
    if name == '/quit':
        return False
    if name == '/reset':
        session.reset()
        _say('the dialogue is reset')
    elif name == '/image' and argument.strip():
        try:
            session.add_image(argument.strip())
            _say(f'image {argument.strip()} will be shown with your next message')
        except DataError as error:
            _say(f'error: {error}')
    else:
        _say(f'unknown command {line!r}; commands: {COMMANDS}')
    return True


def _answer(session, line: str, interactive: bool) -> None:
    from vlm.errors import InputError

    if interactive:
        print('vlm> ', end='', flush=True)
    try:
        for piece in session.send(line):
            print(piece, end='', flush=True)
    except InputError as error:  # a message too long for the context, or an empty one
        print(flush=True)
        _say(f'error: {error}')
        return
    print(flush=True)
    if session.notice():
        _say(session.notice())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='vlm chat', description='Chat with a vlm model directory about images.',
                                     epilog=f'commands: {COMMANDS}')
    add_generation_arguments(parser, max_new_tokens=128)
    parser.add_argument('--system', default=None, help='a system message (kept when old turns are dropped)')
    args = parser.parse_args(argv)
    if args.num_beams > 1:
        parser.error('answers are streamed token by token, which beam search cannot do; use --num-beams 1')
    from vlm.language.chat_session import ChatSession

    session = ChatSession(load_predictor(args), system=args.system, **generation_options(args))
    for image in args.images:
        session.add_image(image)  # a bad file ends the command with its one-line error, before any dialogue
    interactive = sys.stdin.isatty()
    if hasattr(sys.stdin, 'reconfigure'):  # a line that is not UTF-8 reaches the session, which refuses it alone
        sys.stdin.reconfigure(errors='surrogateescape')
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        _say(f'{len(args.images)} image(s) loaded; type a message, or {COMMANDS}')
    while True:
        line = _read_line(interactive, sys.stdin)
        if line is None:
            return 0
        if not line.strip():
            continue
        if line.startswith('/'):
            if not _command(session, line.strip()):
                return 0
            continue
        _answer(session, line, interactive)
