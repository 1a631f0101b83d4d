// images.h: OFX images (bottom-up or top-down rows, byte/short/float RGBA or RGB) and their registry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "props.h"

enum class Depth { Byte, Short, Float };

/** v rounded to the nearest IEEE half-precision value (ties to even), as a 16-bit float pipeline holds it. */
float toHalfPrecision(float v);

Depth depthFromName(const std::string &name);  // "float" | "short" | "byte" or an OfxBitDepth* string
const char *depthOfxName(Depth depth);

/** An image: the property set the plugin sees plus the pixels it points at. */
struct Image {
  Image(int width, int height, int components, Depth depth, bool topDown, unsigned char *borrowed = nullptr);

  PropertySet props{"image"};
  int width, height, components;
  Depth depth;
  bool topDown;               // rows stored top row first: rowBytes is negative
  std::vector<unsigned char> owned;
  unsigned char *base;        // first byte in memory
  std::shared_ptr<const void> keep;  // keeps borrowed pixels alive while the image is lent
  std::string owner;          // action that fetched it (images must be released in the same action)

  size_t pixelBytes() const;
  static size_t bytesFor(int width, int height, int components, Depth depth);
  unsigned char *pixel(int x, int yTop) const;  // yTop = 0 is the top row
  // from 16-bit RGBA, top-down; colour * alpha; float values rounded to half precision
  void fill(const uint16_t *rgba16, bool premultiply = false, bool halfFloat = false);
  void toFloat(float *rgba) const;              // to float RGBA, top-down (alpha 1 when RGB)
  void fillNaN(int x0, int y0, int size);       // float images only
};

/** The registry of images handed to the plugin (clipGetImage / clipReleaseImage). */
OfxPropertySetHandle lendImage(std::unique_ptr<Image> image);
bool returnImage(OfxPropertySetHandle handle);
void checkImagesReleased(const std::string &owner);  // a violation event per image still lent
