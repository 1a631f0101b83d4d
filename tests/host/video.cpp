// video.cpp: ffprobe/ffmpeg pipes (popen) for decoding and encoding.
#include "video.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common.h"

namespace {

std::string run(const std::string &command) {
  FILE *pipe = popen(command.c_str(), "r");
  if (!pipe) throw HostError("cannot run: " + command, 3);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  if (status != 0) throw HostError("command failed (" + std::to_string(WEXITSTATUS(status)) + "): " + command, 3);
  return out;
}

std::string field(const std::string &text, const std::string &key) {
  size_t at = text.find(key + "=");
  if (at == std::string::npos) return "";
  size_t start = at + key.size() + 1;
  return text.substr(start, text.find('\n', start) - start);
}

bool endsWith(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

Video readVideo(const std::string &path, double fps) {
  if (path.find('%') == std::string::npos && access(path.c_str(), R_OK) != 0)
    throw HostError("cannot read input " + path, 3);
  std::string probe = run("ffprobe -v error -select_streams v:0 -show_entries "
                          "stream=width,height,r_frame_rate,pix_fmt,bits_per_raw_sample -of default=nw=1 " + shellQuote(path));
  Video v;
  v.width = std::atoi(field(probe, "width").c_str());
  v.height = std::atoi(field(probe, "height").c_str());
  if (v.width <= 0 || v.height <= 0) throw HostError("no video stream in " + path, 3);
  std::string rate = field(probe, "r_frame_rate"), pixFmt = field(probe, "pix_fmt");
  double num = std::atof(rate.c_str()), den = rate.find('/') != std::string::npos ? std::atof(rate.c_str() + rate.find('/') + 1) : 1.0;
  v.fps = fps > 0 ? fps : (num > 0 && den > 0 ? num / den : 24.0);
  v.alpha = pixFmt.rfind("gray", 0) != 0 && pixFmt.rfind("pal", 0) != 0 && pixFmt.find('a') != std::string::npos;
  int bits = std::atoi(field(probe, "bits_per_raw_sample").c_str());
  bool deepName = false;
  for (const char *tag : {"16", "48", "64", "p9", "p10", "p12", "p14", "f32", "f16"})
    deepName = deepName || pixFmt.find(tag) != std::string::npos;
  v.eightBit = bits > 0 ? bits <= 8 : !deepName;
  // ffmpeg's own 8 -> 16 bit conversion is approximate: widen 8-bit sources here, exactly.
  std::string raw = run("ffmpeg -v error -nostdin -i " + shellQuote(path) + " -f rawvideo -pix_fmt " +
                        (v.eightBit ? "rgba" : "rgba64le") + " -");
  size_t frameBytes = static_cast<size_t>(v.width) * v.height * (v.eightBit ? 4 : 8);
  if (raw.empty() || raw.size() % frameBytes) throw HostError("could not decode whole frames from " + path, 3);
  v.frames = static_cast<int>(raw.size() / frameBytes);
  if (v.eightBit) {
    v.pixels.resize(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) v.pixels[i] = static_cast<uint16_t>(static_cast<unsigned char>(raw[i]) * 257);
  } else {
    v.pixels.resize(raw.size() / 2);
    std::memcpy(v.pixels.data(), raw.data(), raw.size());  // little-endian host
  }
  return v;
}

void writeVideo(const std::string &path, const Video &video) {
  bool pattern = path.find('%') != std::string::npos;
  std::string codec;
  if (endsWith(path, ".mkv"))
    codec = video.eightBit ? (video.alpha ? "-c:v ffv1 -level 3 -pix_fmt bgra" : "-c:v ffv1 -level 3 -pix_fmt bgr0")
                           : (video.alpha ? "-c:v ffv1 -level 3 -pix_fmt rgba64le" : "-c:v ffv1 -level 3 -pix_fmt rgb48le");
  else if (endsWith(path, ".png"))
    codec = video.eightBit ? (video.alpha ? "-c:v png -pix_fmt rgba" : "-c:v png -pix_fmt rgb24")
                           : (video.alpha ? "-c:v png -pix_fmt rgba64be" : "-c:v png -pix_fmt rgb48be");
  // A single file appears atomically: encode to a temp name beside it (same extension), then rename.
  std::string target = path;
  if (!pattern) {
    size_t slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    target = dir + ".tmp" + std::to_string(getpid()) + "-" + name;
  }
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.6f", video.fps);
  std::string command = "ffmpeg -v error -nostdin -y -f rawvideo -pix_fmt " + std::string(video.eightBit ? "rgba" : "rgba64le") +
                        " -s " + std::to_string(video.width) + "x" +
                        std::to_string(video.height) + " -r " + rate + " -i - " + codec + " " + shellQuote(target);
  FILE *pipe = popen(command.c_str(), "w");
  if (!pipe) throw HostError("cannot run ffmpeg for " + path, 3);
  size_t written = 0;
  if (video.eightBit) {  // pixels are v * 257: back to the exact bytes
    std::vector<unsigned char> bytes(video.pixels.size());
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(video.pixels[i] / 257);
    written = std::fwrite(bytes.data(), 1, bytes.size(), pipe);
  } else {
    written = std::fwrite(video.pixels.data(), 2, video.pixels.size(), pipe);
  }
  int status = pclose(pipe);
  if (written != video.pixels.size() || status != 0) {
    if (!pattern) std::remove(target.c_str());
    throw HostError("ffmpeg could not write " + path, 3);
  }
  if (!pattern && std::rename(target.c_str(), path.c_str()) != 0) throw HostError("cannot rename into " + path, 3);
}

uint16_t quantize16(float v) {
  if (std::isnan(v)) return 0;
  return static_cast<uint16_t>(std::nearbyint(std::clamp(v, 0.0f, 1.0f) * 65535.0f));
}

uint16_t quantize8as16(float v) {
  if (std::isnan(v)) return 0;
  return static_cast<uint16_t>(std::nearbyint(std::clamp(v, 0.0f, 1.0f) * 255.0f) * 257);
}
