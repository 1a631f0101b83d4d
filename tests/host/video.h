// video.h: read a clip into memory and write results, through ffprobe/ffmpeg pipes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

/** A decoded clip: 16-bit RGBA frames, top-down rows, all in memory (keep clips small). */
struct Video {
  int width = 0, height = 0, frames = 0;
  double fps = 24.0;
  bool alpha = false;            // the source has an alpha channel (else alpha is 65535)
  bool eightBit = false;         // 8 bits per channel: pixels hold v * 257 exactly, written back as 8-bit
  std::vector<uint16_t> pixels;  // frames * height * width * 4

  const uint16_t *frame(int i) const { return pixels.data() + static_cast<size_t>(i) * width * height * 4; }
};

/** Decode `path` (a video file or an ffmpeg image-sequence pattern); fps <= 0 means "from ffprobe".
 *  8-bit sources are decoded at 8 bits and widened exactly (v * 257), so a byte or float clip
 *  holds the same values as the Python reader's (v / 255). */
Video readVideo(const std::string &path, double fps);

/** Encode RGBA frames (top-down) to `path`: FFV1 for .mkv, PNG for .png, ffmpeg's default otherwise;
 *  16-bit, or 8-bit (pixels / 257) for an eightBit video. */
void writeVideo(const std::string &path, const Video &video);

/** Quantize like the Python writer: nearbyint(clamp(v, 0, 1) * 65535) (round half to even). */
uint16_t quantize16(float v);

/** The same at 8 bits, widened to 16 (nearbyint(clamp(v, 0, 1) * 255) * 257), for eightBit videos. */
uint16_t quantize8as16(float v);
