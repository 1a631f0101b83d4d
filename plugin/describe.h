// describe.h: Describe and DescribeInContext. The effect's identity (kPluginIdentifier, version,
// label) is generated from deflicker.server.plugin_spec into params_gen.h (plugin/params.h).
#ifndef DEFLICKER_PLUGIN_DESCRIBE_H
#define DEFLICKER_PLUGIN_DESCRIBE_H

#include "ofx/ofx_api.h"

namespace deflicker_ofx {

/** OfxActionDescribe: contexts, depths, temporal access, threading. */
OfxStatus describe(OfxImageEffectHandle effect);

/** OfxImageEffectActionDescribeInContext: the Source and Output clips and every param of params.h. */
OfxStatus describe_in_context(OfxImageEffectHandle effect);

}  // namespace deflicker_ofx

#endif  // DEFLICKER_PLUGIN_DESCRIBE_H
