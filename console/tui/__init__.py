"""The console (Textual). Importing this package sets Textual's frame rate, before Textual is
imported by any module of it.

Textual draws a frame at most every 1/TEXTUAL_FPS s, and after a frame that came late it waits
up to two periods for the next one. Under an output flood the Log's frames keep that timer busy,
so a key's repaint waited for it: under a 20k lines/s flood, key to frame inside the app was
p50/p90 7.7/30.6 ms at 60 and 6.7/16.8 ms at 120 (idle: 2.0/4.4). 120 halves the period; frames
are still drawn only when something changed. A TEXTUAL_FPS in the environment wins.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
