"""`dlcli detect-faces` on hostile input: file names that are not UTF-8, binary junk on stdin, damaged
and deceitful image files, huge images; and a fuzz run in a real process whose memory is measured."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import sys
import zlib

import numpy as np
import pytest
from helpers import assert_fails, assert_ok, run_measured
from PIL import Image
from test_detect_faces import converted_detector

from dlcli.pathlists import MAX_PATH_BYTES

# Peak RSS allowed to a detect-faces process on hostile input (MB); the fuzz runs took about 270 MB.
# before --max-side a 9000 x 9000 photo took 5,500 MB.
FUZZ_RSS_MB = 800
BIG_RSS_MB = 2_000
FACE_KEYS = {"image", "width", "height", "faces"}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return converted_detector(tmp_path_factory.mktemp("mtcnn_robust"), seed=2)


def photo(path, h: int = 60, w: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR chunk (valid CRC) claiming width x height RGB pixels, and the first
    few bytes of compressed data: it opens, and decoding it runs out of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(bytes(4000))[:20])


def jpeg_claiming(size: tuple[int, int], seed: int = 0) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims `size` (width, height), cut short so that
    its data ends before the end-of-image marker. (Complete, Pillow would accept it, decoding the
    missing rows as grey: libjpeg only warns about a premature end marker.)"""
    out = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", size[1], size[0])
    return bytes(data[:-100])


def encoded(fmt: str, seed: int = 0, side: int = 48) -> bytes:
    out = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


# ---------------------------------------------------------------- paths that are bytes


def test_a_file_name_that_is_not_utf8_is_carried_through(cli, detector, tmp_path):
    """Was: `internal error: UnicodeEncodeError`, and the records of the good images were lost."""
    good = photo(tmp_path / "good.png")
    odd = photo(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9 \xff.png"), seed=1)  # Latin-1 bytes
    result = cli("detect-faces", good, odd, good, "--model", detector)
    assert_ok(result)
    records = result.records()
    assert len(records) == 3 and all("faces" in r for r in records)
    assert os.fsencode(records[1]["image"]) == os.fsencode(tmp_path) + b"/caf\xe9 \xff.png"
    assert "\\udce9 \\udcff.png" in result.lines[1]  # written as escapes: the output stays UTF-8
    assert records[0]["faces"] == records[2]["faces"] and records[0]["faces"] != records[1]["faces"]


def test_binary_junk_on_stdin_gives_an_error_record_per_line(cli, detector, tmp_path):
    """Was: `internal error: UnicodeDecodeError` on the first undecodable line."""
    good = os.fsencode(photo(tmp_path / "good.png"))
    odd = os.fsencode(photo(os.fsdecode(os.fsencode(tmp_path) + b"/\x80\xfe.png")))
    junk = [b"\xff\xfe\x00\x01binary", b"\x89PNG\r\x1a\x00\x00", "\u0ca0_\u0ca0 \U0001f600".encode()]
    stdin = b"\n".join([good, junk[0], odd, b"", junk[1], junk[2], good]) + b"\r\n"
    result = cli("detect-faces", "--model", detector, stdin=stdin)
    assert result.code == 1 and "Traceback" not in result.err
    records = result.records()
    assert [os.fsencode(r["image"]) for r in records] == [good, junk[0], odd, *junk[1:], good]
    assert ["faces" in r for r in records] == [True, False, True, False, False, True]
    assert "NUL byte" in records[1]["error"] and "not found" in records[4]["error"]
    assert "dlcli: error: 3 of 6 images could not be read" in result.err and "hint:" in result.err
    assert "\\xff\\xfe\\x00\\x01binary: not a file name" in result.err  # escaped for the terminal


def test_predict_reads_path_lists_as_bytes(cli, detector, tmp_path):
    """`dlcli predict` (api.input_chunks' path branch) decoded path lines strictly."""
    good = photo(tmp_path / "good.png")
    odd = photo(os.fsdecode(os.fsencode(tmp_path) + b"/\xff.png"))
    result = cli("predict", detector, "-", stdin=os.fsencode(good) + b"\n" + os.fsencode(odd) + b"\n")
    assert_ok(result)
    assert [os.fsencode(r["image"]) for r in result.records()] == [os.fsencode(good), os.fsencode(odd)]


def test_a_line_longer_than_any_path_is_refused_without_holding_it(cli, detector, tmp_path):
    good = os.fsencode(photo(tmp_path / "good.png"))
    huge = b"x/" * 600_000  # 1.2 MB, no newline until the end
    result = cli("detect-faces", "--model", detector, stdin=good + b"\n" + huge + b"\n" + good)
    assert result.code == 1
    records = result.records()
    assert len(records) == 3 and "faces" in records[0] and "faces" in records[2]
    cut = records[1]["image"]
    assert cut.endswith("...") and len(cut) <= MAX_PATH_BYTES + 4 and huge.startswith(cut[:-3].encode())
    assert "too long" in records[1]["error"].lower()


# ---------------------------------------------------------------- hostile image files


def hostile_files() -> dict[str, tuple[bytes | None, str]]:
    """name -> (content, fragment of its error); None: made otherwise (see make_hostile)."""
    png, jpeg = encoded("PNG"), encoded("JPEG")
    return {
        "empty.png": (b"", "not an image"),
        "random.jpg": (bytes(random.Random(0).randrange(256) for _ in range(5000)), "not an image"),
        "truncated.png": (png[:len(png) // 2], "truncated"),
        "truncated.jpg": (jpeg[:len(jpeg) // 2], "truncated"),
        "corrupt.jpg": (jpeg[:300] + bytes(200) + b"\xff\xd9" + jpeg[502:], "damaged"),
        "bomb.png": (png_claiming(100_000, 100_000), "decompression-bomb"),
        "zero.png": (png_claiming(0, 0), "not an image"),
        "claims_big.png": (png_claiming(9000, 9000), "truncated"),
        "claims_big.jpg": (jpeg_claiming((9000, 9000)), "truncated"),
        "bomb.jpg": (jpeg_claiming((65_000, 65_000)), "decompression-bomb"),
        "ghostscript.eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n", "not an image"),
        "folder.png": (None, "is a directory"),
        "fifo.png": (None, "not a regular file"),
        "loop.png": (None, "cannot open"),
    }


def make_hostile(folder) -> dict:
    files = hostile_files()
    for name, (content, _) in files.items():
        if content is not None:
            (folder / name).write_bytes(content)
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "fifo.png")  # opening it would wait for a writer forever
    os.symlink("loop.png", folder / "loop.png")
    return files


def test_damaged_and_deceitful_files_each_get_an_error_record(cli, detector, tmp_path):
    files = make_hostile(tmp_path)
    good = photo(tmp_path / "good.png")
    paths = [tmp_path / name for name in files]
    result = cli("detect-faces", good, *paths, good, "--model", detector)
    assert result.code == 1 and "Traceback" not in result.err
    records = result.records()
    assert len(records) == len(files) + 2 and "faces" in records[0] and "faces" in records[-1]
    for record, (name, (_, fragment)) in zip(records[1:-1], files.items()):
        assert set(record) == {"image", "error"}, name
        assert fragment in record["error"] and name in record["error"], (name, record["error"])
    assert f"dlcli: error: {len(files)} of {len(files) + 2} images could not be read" in result.err


# ---------------------------------------------------------------- --max-side


def test_max_side_detects_on_the_scaled_image_and_reports_file_pixels(cli, detector, tmp_path):
    big = photo(tmp_path / "big.png", 120, 240, seed=3)
    small = tmp_path / "small.png"
    Image.open(big).resize((120, 60), Image.Resampling.BOX).save(small)
    scaled = cli("detect-faces", big, "--model", detector, "--max-side", "120").json()
    direct = cli("detect-faces", small, "--model", detector).json()
    assert (scaled["width"], scaled["height"]) == (240, 120) and direct["faces"]
    assert len(scaled["faces"]) == len(direct["faces"])
    for mapped, face in zip(scaled["faces"], direct["faces"]):
        assert mapped["box"] == pytest.approx([2 * v for v in face["box"]], abs=0.02)
        assert np.allclose(mapped["landmarks"], np.array(face["landmarks"]) * 2, atol=0.02)
        assert mapped["score"] == face["score"]
    full = cli("detect-faces", big, "--model", detector, "--max-side", "0").json()
    assert full["faces"] != scaled["faces"]


def test_pictures_of_a_scaled_image_are_drawn_at_its_full_size(cli, detector, tmp_path):
    big = photo(tmp_path / "big.png", 120, 240, seed=3)
    result = cli("detect-faces", big, "--model", detector, "--max-side", "120", "--draw", tmp_path / "drawn")
    assert_ok(result)
    assert Image.open(tmp_path / "drawn" / "big.png").size == (240, 120)


@pytest.mark.parametrize(("args", "message", "hint"), [
    (("--max-side", "5"), "--max-side: 5", "0 detects at full size"),
    (("--thresholds", "0.6,0.7"), "--thresholds", "give one per net"),
    (("--factor", "1.5"), "--factor", "0.709 is the usual step"),
])
def test_option_errors_have_a_hint(cli, detector, tmp_path, args, message, hint):
    assert_fails(cli("detect-faces", photo(tmp_path / "a.png"), "--model", detector, *args), 2, message,
                 f"hint: {hint}")


def test_other_errors_have_a_hint(cli, detector, trained, tmp_path):
    assert_fails(cli("detect-faces", "a.png", "-", "--model", detector), 2, "cannot be mixed", "hint: list the")
    assert_fails(cli("detect-faces", photo(tmp_path / "a.png"), "--model", trained), 1,
                 "needs a detect_faces model", "hint: use dlcli classify")


# ---------------------------------------------------------------- fuzz, in a real process


def random_name(rng: random.Random, for_lines: bool) -> bytes:
    """A file name of random bytes or random Unicode (no '/', NUL, or for a path list CR/LF)."""
    banned = b"/\x00" + (b"\r\n" if for_lines else b"")
    if rng.random() < 0.5:
        name = bytes(rng.choice([b for b in range(1, 256) if b not in banned]) for _ in range(rng.randint(1, 60)))
    else:
        chars = (chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0xd800),
                                 rng.randrange(0xe000, 0x110000)])) for _ in range(rng.randint(1, 30)))
        name = "".join(chars).encode("utf-8")
        name = bytes(b for b in name if b not in banned) or b"x"
    return name[:200] if name not in (b".", b"..") else b"dots"


def fuzz_corpus(folder, seed: int, for_lines: bool) -> tuple[list[bytes], set[bytes]]:
    """Paths (bytes) of good photos, hostile files and random junk under random names, shuffled;
    and the set of those that are good photos."""
    rng = random.Random(seed)
    make_hostile(folder)  # fixed names
    folder = os.fsencode(folder)
    paths = [folder + b"/" + os.fsencode(name) for name in hostile_files()]
    good = set()
    for i in range(4):
        path = folder + b"/" + random_name(rng, for_lines) + b".%d.png" % i
        photo(os.fsdecode(path), 30 + 10 * i, 40, seed=i)
        good.add(path)
    for i in range(12):
        path = folder + b"/" + random_name(rng, for_lines) + b".%d" % i
        kind = rng.choice(("bytes", "truncated", "flipped", "header"))
        data = encoded(rng.choice(("PNG", "JPEG", "BMP", "GIF", "TIFF")), seed=i)
        if kind == "bytes":
            data = rng.randbytes(rng.choice((0, 1, 17, 300, 70_000)))
        elif kind == "truncated":
            data = data[:rng.randrange(len(data))]
        elif kind == "flipped":
            data = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = png_claiming(rng.randrange(2**31), rng.randrange(2**31))
        with open(path, "wb") as fh:
            fh.write(data)
        paths.append(path)
    paths += sorted(good)
    rng.shuffle(paths)
    return paths, good


def junk_lines(rng: random.Random) -> list[bytes]:
    """Lines that name no file: random bytes, random Unicode, of random lengths up to 2 MB."""
    lines = []
    for _ in range(25):
        length = rng.choice((1, 2, 7, 100, 255, 256, MAX_PATH_BYTES - 1, MAX_PATH_BYTES, MAX_PATH_BYTES + 1,
                             MAX_PATH_BYTES + 2, 70_000, 2_000_000))
        if rng.random() < 0.5:
            line = rng.randbytes(length).replace(b"\n", b"n").replace(b"\r", b"r")
        else:
            line = "".join(chr(rng.randrange(0x21, 0x2fff)) for _ in range(min(length, 5000))).encode()
            line = line.replace(b"\n", b"n").replace(b"\r", b"r")
        lines.append(b"#" + line)  # never blank, never a file
    return lines


def run_detect(args: list, stdin: bytes = b"") -> tuple[int, bytes, str, float]:
    """(exit code, stdout, stderr, peak RSS in MB) of `dlcli detect-faces ARGS` in its own process."""
    env = {**{k: v for k, v in os.environ.items() if k != "DLCLI_DEBUG"}, "OMP_NUM_THREADS": "1"}
    return run_measured([sys.executable, "-m", "dlcli", "detect-faces", *args], stdin=stdin, env=env)


def check_run(code: int, out: bytes, err: str, expected: list[bytes], good: set[bytes]) -> None:
    assert code in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 1:
        assert "dlcli: error:" in err
    records = [json.loads(line) for line in out.decode("utf-8").split("\n")[:-1]]  # strict UTF-8, valid JSON
    assert len(records) == len(expected)
    for record, path in zip(records, expected):
        image = os.fsencode(record["image"])
        if len(path) <= MAX_PATH_BYTES:
            assert image == path
        else:
            assert record["image"].endswith("...") and path.startswith(image[:-3]) and "error" in record
        # a damaged file may still decode (BMP has no checksum); a good photo always does
        assert set(record) in ((FACE_KEYS,) if path in good else (FACE_KEYS, {"image", "error"})), (path, record)
    assert code == (1 if any("error" in r for r in records) else 0)


@pytest.mark.parametrize("seed", [0])
def test_fuzz_paths_on_stdin(detector, tmp_path, seed):
    paths, good = fuzz_corpus(tmp_path, seed, for_lines=True)
    rng = random.Random(seed + 100)
    lines = paths + junk_lines(rng)
    rng.shuffle(lines)
    endings = [rng.choice((b"\n", b"\r\n", b"\n\n", b"\n \n")) for _ in lines]
    stdin = b"".join(line + end for line, end in zip(lines, endings))
    code, out, err, rss = run_detect(["--model", str(detector), "--batch-size", "3"], stdin)
    check_run(code, out, err, lines, good)
    assert rss < FUZZ_RSS_MB, f"peak RSS {rss:.0f} MB"


@pytest.mark.parametrize("seed", [1])
def test_fuzz_paths_as_arguments(detector, tmp_path, seed):
    paths, good = fuzz_corpus(tmp_path, seed, for_lines=False)
    code, out, err, rss = run_detect(["--model", str(detector), *(os.fsdecode(p) for p in paths)])
    check_run(code, out, err, paths, good)
    assert rss < FUZZ_RSS_MB, f"peak RSS {rss:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 8))
def test_fuzz_more_seeds(detector, tmp_path, seed):
    (tmp_path / "args").mkdir()
    (tmp_path / "lines").mkdir()
    test_fuzz_paths_as_arguments(detector, tmp_path / "args", seed)
    test_fuzz_paths_on_stdin(detector, tmp_path / "lines", seed)


@pytest.mark.slow
def test_a_9000_pixel_photo_stays_within_bounded_memory(tmp_path):
    """Was 5.5 GB peak RSS with the shipped detector; the default --max-side scales it to 4096."""
    y, x = np.mgrid[0:9000, 0:9000].astype(np.uint16)
    pixels = np.stack([x // 7 % 256, y // 5 % 256, (x + y) // 11 % 256], -1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=85)
    del x, y, pixels
    code, out, err, rss = run_detect([str(tmp_path / "big.jpg")])
    assert code == 0, err
    record = json.loads(out)
    assert (record["width"], record["height"]) == (9000, 9000)
    assert rss < BIG_RSS_MB, f"peak RSS {rss:.0f} MB"
