// The kind of an AE's reconstruction loss, named once for the model's configuration (network.h)
// and the backends' loss ops (ops.h): mean absolute error (L1) or mean squared error (MSE).
#pragma once

namespace fmnist {

enum class PointLoss { L1, MSE };

}  // namespace fmnist
