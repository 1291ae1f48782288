#include "env_data.h"

#include "async_waits.h"
#include "semaphore.h"

namespace addon {

size_t Handle::Release() {
  if (!share_name.empty()) {
    // A gauge share dies with its owner: give its count back, drop its name.
    nsem::Drain(shared->sem());
    nsem::Unlink(share_name.c_str());
  }
  size_t outstanding = EndWaits(data, this);
  word.Forget(data->env);
  shared->Unref();
  return outstanding;
}

size_t SumHandle::Release() {
  words.Forget(data->env);
  return 0;
}

void ChangeWaitsInFlight(EnvData* data, ptrdiff_t delta) {
  size_t before = data->waits_in_flight;
  data->waits_in_flight += delta;
  if (data->torn_down) return;
  if (before == 0 && data->waits_in_flight > 0) {
    napi_ref_threadsafe_function(data->env, data->tsfn);
  } else if (before > 0 && data->waits_in_flight == 0) {
    napi_unref_threadsafe_function(data->env, data->tsfn);
  }
}

void CloseId(EnvData* data, uint64_t id) {
  Bound* b = data->handles.Remove(id);
  if (b == nullptr) return;
  size_t outstanding = b->Release();
  delete b;
  ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(outstanding));
}

void MaybeFreeEnvData(EnvData* data) {
  if (data->torn_down && data->tokens_alive == 0) delete data;
}

}  // namespace addon
