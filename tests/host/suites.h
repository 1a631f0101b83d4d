// suites.h: the host's memory, multithread, message (V1 is a prefix of V2), progress and timeline suites.
#pragma once

#include "ofx/ofx_api.h"

const OfxMemorySuiteV1 *memorySuite();
const OfxMultiThreadSuiteV1 *multiThreadSuite();
const OfxMessageSuiteV2 *messageSuite();
const OfxProgressSuiteV1 *progressSuiteV1();
const OfxProgressSuiteV2 *progressSuiteV2();
const OfxTimeLineSuiteV1 *timeLineSuite();
