"""Remove torchaudio's compiled extension from the current environment.

torchaudio's registry wheels carry an extension built against another torch build; it cannot load with
the torch we pin. The pure-Python transforms auscult uses (MelSpectrogram, AmplitudeToDB) work without it,
and torchaudio imports cleanly once the shared objects are gone.
"""

import pathlib
import sysconfig

folder = pathlib.Path(sysconfig.get_paths()["purelib"]) / "torchaudio" / "lib"
for library in folder.glob("*.so"):
    library.unlink()
    print(f"removed {library}")
