// describe.h: the effect's identity and its description (Describe, DescribeInContext).
#ifndef DEFLICKER_PLUGIN_DESCRIBE_H
#define DEFLICKER_PLUGIN_DESCRIBE_H

#include "ofx/ofx_api.h"

namespace deflicker_ofx {

// Identity. Bump the MAJOR version when saved projects can no longer load (params removed or
// renamed, meaning changed): Nuke names the node class after it. Bump MINOR for compatible
// changes (new params with defaults, fixes).
inline constexpr const char *kPluginIdentifier = "com.atlasdeflicker.Deflicker";
inline constexpr unsigned kVersionMajor = 1;
inline constexpr unsigned kVersionMinor = 0;
inline constexpr const char *kPluginLabel = "Atlas Deflicker";  // not "Deflicker": Resolve Studio has a ResolveFX of that name
inline constexpr const char *kPluginGrouping = "Filter";
inline constexpr const char *kPluginDescription =
    "Blind video deflickering: removes brightness and colour flicker using a per-clip atlas, "
    "a neural filter and local refinement.";
/** OfxActionDescribe: contexts, depths, temporal access, threading. */
OfxStatus describe(OfxImageEffectHandle effect);

/** OfxImageEffectActionDescribeInContext: the Source and Output clips and every param of params.h. */
OfxStatus describe_in_context(OfxImageEffectHandle effect);

}  // namespace deflicker_ofx

#endif  // DEFLICKER_PLUGIN_DESCRIBE_H
