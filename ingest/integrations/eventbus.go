package integrations

import "github.com/labstack/echo/v5"

// routeEventBus registers the route(s) of this tool. STUB: being written.
func (r *Routes) routeEventBus(e *echo.Echo) {}
