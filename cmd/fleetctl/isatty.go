package main

import "golang.org/x/term"

func isatty(fd uintptr) bool { return term.IsTerminal(int(fd)) }
