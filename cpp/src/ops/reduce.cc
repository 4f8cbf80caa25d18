// Column sums of a row-major block: the bias gradient of a Dense layer.
#include <algorithm>

#include "densitron/ops.h"

namespace densitron {

void column_sums(const float* x, int64_t rows, int64_t cols, float* col_sums, bool accumulate) {
  if (!accumulate) std::fill(col_sums, col_sums + cols, 0.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x + i * cols;
    for (int64_t j = 0; j < cols; ++j) col_sums[j] += r[j];
  }
}

}  // namespace densitron
