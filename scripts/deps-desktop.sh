#!/usr/bin/env bash
# Installs what the applet (applet/, built when gtkmm-4.0 is found) and its
# desktop test suite (tests/desktop) need: gtkmm 4 to build it; a virtual X
# server, the accessibility bus and Python's AT-SPI binding to drive it as a
# person would; ImageMagick's `import` for the screenshots. Idempotent and
# quiet when everything is present, like deps.sh.
set -euo pipefail
. "$(dirname "$0")/deps-lib.sh"

packages=(
    # build: GTK 4 through gtkmm (giomm's GDBus talks to kvmnetd)
    libgtkmm-4.0-dev
    # the test's display: Xvfb under xvfb-run (which needs xauth)
    xvfb xauth
    # the accessibility bus (at-spi-bus-launcher, at-spi2-registryd) and its
    # client library for Python (through PyGObject, python3-gi in deps.sh),
    # which finds and presses the applet's widgets
    at-spi2-core gir1.2-atspi-2.0
    # GTK's accessibility bridge and a font to draw the labels with
    libgtk-4-1 fonts-dejavu-core
    # screenshots of each state (import -window root)
    imagemagick
)

deps_install deps-desktop.sh "${packages[@]}"
